// Authenticator app on Security info, in Entra's steps: the key shown once (QR code and groups of four),
// the app's first code, registered. The codes typed come from oathtool given the key the page showed, as
// an app would be given it; never from the gateway's verifier.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { registerClient } from '../../src/commands/clients.js'
import { setPolicy } from '../../src/commands/policies.js'
import { activateToken, resyncToken, verifyCode } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { freePort } from '../helpers/net.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { totpAt, totpBase32At } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database, clock, logs } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE, TESSERA_ORGANIZATION: 'Contoso Ltd' })
await app.listen({ port, host: '127.0.0.1' })
// Many attempts in one real minute across these tests: the per-user limit is not what they test.
const SETTINGS = { ...DEFAULT_SETTINGS, activationAttemptsPerMinute: 100 }
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: SETTINGS }, metadata())
const unix = () => Math.floor(clock.now.getTime() / 1000)
const step = () => { clock.now = new Date(clock.now.getTime() + 30_000) }

// Rosa has a hardware token; every change to her methods needs a code from it.
const rosa = await addUser(app, 'rosa@example.com')
await importEntra(app, [`rosa@example.com,RO-1,${seedOf('RO-1').b32},30,Token2,C202`])
await activateToken(app.commands, { serial: 'RO-1', userId: rosa.userId, name: 'Rosa key', code: totpAt(seedOf('RO-1').hex, unix()) }, metadata())

async function verified(upn: string, serial: string): Promise<Browser> {
  const b = new Browser(app)
  await b.signIn(upn)
  step()
  await b.get('/security-info/verify')
  const done = await b.post('/security-info/verify', { code: totpAt(seedOf(serial).hex, unix()) })
  if (done.status !== 303) throw new Error(`verify failed: ${done.status}`)
  return b
}

/** The key as "Can't scan image?" shows it, and the account name beside it. */
function shownKey(html: string): { key: string; account: string } {
  const key = /<code class="secret">([A-Z2-7 ]+)<\/code>/.exec(html)?.[1]
  const account = /<dt>Account name<\/dt><dd>([^<]+)<\/dd>/.exec(html)?.[1]
  if (!key || !account) throw new Error('no key on the page')
  return { key: key.replace(/ /g, ''), account }
}

const secretsIn = async () => JSON.stringify((await sql<{ data: unknown; metadata: unknown }>`select data, metadata from events`.execute(database.db)).rows)

let rosaApp = ''
let rosaKey = ''

t.test('Add sign-in method > Authenticator app: the key shown, the first code from the app, registered', async (t) => {
  const b = await verified('rosa@example.com', 'RO-1')
  const add = text((await b.get('/security-info/add')).body)
  t.match(add, /Authenticator app Use an app on your phone or computer/, 'offered: the built-in default policy allows apps')
  t.equal((await b.post('/security-info/add', { method: 'authenticator-app' })).location, '/security-info/authenticator-app')
  const start = await b.get('/security-info/authenticator-app')
  t.match(text(start.body), /Start by getting the app .*install an authenticator app/)
  const next = await b.post('/security-info/authenticator-app', {})
  t.equal(next.location, '/security-info/authenticator-app/scan')
  const scan = await b.get('/security-info/authenticator-app/scan')
  t.equal(scan.status, 200)
  t.equal(scan.headers['cache-control'], 'no-store', 'a page with a key is never cached')
  t.match(text(scan.body), /Set up your account in the app .*Can't scan image\? .*Account name Contoso Ltd \(rosa@example\.com\) Secret key/)
  t.match(scan.body, /<div class="qr" role="img" aria-label="QR code for your authenticator app"><svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, 'the QR code is an inline SVG')
  t.notMatch(scan.body, /<script|<img/, 'no script and no image request: it works with scripts off under the CSP')
  const { key } = shownKey(scan.body)
  t.equal(key.length, 32, '20 bytes of key: 32 Base32 characters')
  t.match(/<code class="secret">([^<]+)</.exec(scan.body)![1]!, /^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/, 'in groups of four')
  // Reloading shows the same key (the app may already have it); a new start makes a new one.
  t.equal(shownKey((await b.get('/security-info/authenticator-app/scan')).body).key, key)

  const codePage = await b.get('/security-info/authenticator-app/code')
  t.match(text(codePage.body), /Enter the 6-digit code shown in the app\./)
  const wrongCode = String((Number(totpBase32At(key, unix())) + 1) % 1_000_000).padStart(6, '0')
  const wrong = await b.post('/security-info/authenticator-app/code', { code: wrongCode })
  t.equal(wrong.status, 422)
  t.match(text(wrong.body), /The code is incorrect|didn't work|wrong/i)
  const letters = await b.post('/security-info/authenticator-app/code', { code: 'abc' })
  t.match(text(letters.body), /Enter the 6-digit code shown in the app\./)
  const done = await b.post('/security-info/authenticator-app/code', { code: totpBase32At(key, unix()) })
  t.equal(done.status, 303)
  const registered = await b.follow(done)
  t.match(text(registered.body), /Authenticator app was successfully registered/)
  const serial = /serial number (APP-[0-9A-F]{16})/.exec(text(registered.body))?.[1]
  t.ok(serial, 'the software token has a serial of its own')
  rosaApp = serial!
  rosaKey = key

  const info = text((await b.get('/security-info')).body)
  t.match(info, new RegExp(`Authenticator app Authenticator app \\(serial ${serial}\\)`))
  const token = (await sql<{ kind: string; status: string; user_id: string; algorithm: string; digits: number; period: number }>`
    select kind, status, user_id, algorithm, digits, period from tokens where serial = ${serial}`.execute(database.db)).rows[0]
  t.same(token, { kind: 'software', status: 'active', user_id: rosa.userId, algorithm: 'SHA1', digits: 6, period: 30 })
  const events = (await sql<{ stream_id: string; type: string; data: any }>`select stream_id, type, data from events
    where stream_id in (${`token-${serial}`}, ${`user-${rosa.userId}`}) order by position`.execute(database.db)).rows
  t.match(events.filter((e) => e.stream_id === `token-${serial}`), [
    { type: 'SoftwareTokenCreated', data: { serial, kind: 'software', userId: rosa.userId, algorithm: 'SHA1', digits: 6, period: 30, by: 'self', activationCode: null } },
    { type: 'TokenActivated', data: { serial, userId: rosa.userId } },
  ])
  t.match(events.at(-1), { type: 'SignInMethodAdded', data: { serial, by: 'self' } })
  const everything = await secretsIn()
  t.notMatch(everything, key, 'the key is in no event')
  t.notMatch(everything, /otpauth/, 'nor the URI')
  t.notMatch(logs.join('\n'), key, 'nor in a log line')
  t.notMatch(logs.join('\n'), /otpauth/)
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups`.execute(database.db)).rows[0]!.n), 0, 'the set-up ended with the token')
  t.notMatch(text((await b.get('/security-info')).body), new RegExp(key), 'no later page shows the key')
})

t.test('the app signs in: its code once, and the ID token says swk', async (t) => {
  const CALLBACK = 'https://rp.example.com/callback'
  const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
  const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfaUnrestricted,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const interaction = new URL(login.url).pathname
  await agent.follow(await agent.post(`${interaction}/login`, { upn: 'rosa@example.com', password: 'correct horse battery' }))
  step()
  const code = totpBase32At(rosaKey, unix())
  const done = await agent.follow(await agent.post(`${interaction}/code`, { code }), 'https://rp.example.com')
  const claims = (await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: verifier })).claims()!
  t.equal(claims.acr, LEVELS.mfaUnrestricted, 'an app is not restricted: it reaches the unrestricted level')
  t.same(claims.amr, ['pwd', 'otp', 'swk', 'mfa'], 'amr: a one-time password from a software key')
  const verified = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`token-${rosaApp}`} order by stream_version desc limit 1`.execute(database.db)).rows[0]
  t.match(verified, { type: 'OtpVerified', data: { relyingApplication: 'payroll' } })

  // The same code again, in a new sign-in: refused as used.
  const again = new Agent(BASE)
  const url2 = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login2 = await again.follow(await again.get(url2.toString()))
  const interaction2 = new URL(login2.url).pathname
  await again.follow(await again.post(`${interaction2}/login`, { upn: 'rosa@example.com', password: 'correct horse battery' }))
  const replay = await again.post(`${interaction2}/code`, { code })
  t.equal(replay.status, 422)
  const rejected = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`token-${rosaApp}`} order by stream_version desc limit 1`.execute(database.db)).rows[0]
  t.match(rejected, { type: 'OtpRejected', data: { reason: 'replayed' } })
})

t.test('a set-up the user leaves expires and its key is destroyed; wrong codes end it', async (t) => {
  const b = await verified('rosa@example.com', 'RO-1')
  await b.post('/security-info/authenticator-app', {})
  const first = shownKey((await b.get('/security-info/authenticator-app/scan')).body).key
  // Starting again replaces the unfinished one: one waits per user.
  await b.post('/security-info/authenticator-app', {})
  const second = shownKey((await b.get('/security-info/authenticator-app/scan')).body).key
  t.not(second, first, 'a new start makes a new key')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups where user_id = ${rosa.userId}`.execute(database.db)).rows[0]!.n), 1)
  clock.now = new Date(clock.now.getTime() + 11 * 60_000)
  const swept = await app.softwareTokens.sweep()
  t.equal(swept.setups, 1, 'the sweep destroyed the abandoned key')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups`.execute(database.db)).rows[0]!.n), 0)
  const b2 = await verified('rosa@example.com', 'RO-1')
  t.equal((await b2.get('/security-info/authenticator-app/scan')).location, '/security-info/authenticator-app', 'nothing to show: start again')

  await b2.post('/security-info/authenticator-app', {})
  const key = shownKey((await b2.get('/security-info/authenticator-app/scan')).body).key
  const wrongCode = String((Number(totpBase32At(key, unix())) + 7) % 1_000_000).padStart(6, '0')
  for (let i = 0; i < 4; i++) t.equal((await b2.post('/security-info/authenticator-app/code', { code: wrongCode })).status, 422)
  const ended = await b2.post('/security-info/authenticator-app/code', { code: wrongCode })
  t.match(text(ended.body), /Too many wrong codes\. This set-up was cancelled/)
  const late = await b2.post('/security-info/authenticator-app/code', { code: totpBase32At(key, unix()) })
  t.match(text(late.body), /This set-up has expired\. Start again/, 'even the right code does nothing now')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from tokens where user_id = ${rosa.userId} and kind = 'software'`.execute(database.db)).rows[0]!.n), 1)
})

t.test('a password alone adds no app; the policy decides; Cancel destroys the key', async (t) => {
  const b = new Browser(app)
  await b.signIn('rosa@example.com')
  await b.get('/security-info')
  const start = await b.post('/security-info/authenticator-app', {})
  t.equal(start.location, '/security-info/verify', 'a code from an existing method first')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups`.execute(database.db)).rows[0]!.n), 0, 'no key was made')

  const v = await verified('rosa@example.com', 'RO-1')
  await v.post('/security-info/authenticator-app', {})
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups`.execute(database.db)).rows[0]!.n), 1)
  t.equal((await v.post('/security-info/authenticator-app/cancel', {})).location, '/security-info')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from software_setups`.execute(database.db)).rows[0]!.n), 0, 'Cancel destroyed the key')

  // At the policy's most methods: refused, nothing made.
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...SETTINGS, maxMethods: 2 } }, metadata())
  const full = await v.post('/security-info/authenticator-app', {})
  t.equal(full.status, 422)
  t.match(text(full.body), /You already have 2 authenticator methods\. Remove one before adding another\./)
  // Without apps in the policy: not offered, and the steps say why.
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...SETTINGS, methods: ['hardware', 'temporary_code'] } }, metadata())
  t.notMatch(text((await v.get('/security-info/add')).body), /Authenticator app/)
  const refused = await v.get('/security-info/authenticator-app')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Your security policy does not allow an authenticator app as a sign-in method\./)
  // A code from the app is refused too while the policy says no (without counting a failure).
  step()
  const agentless = new Browser(app)
  await agentless.signIn('rosa@example.com')
  await agentless.get('/security-info/verify')
  const code = await agentless.post('/security-info/verify', { code: totpBase32At(rosaKey, unix()) })
  t.equal(code.status, 422)
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: SETTINGS }, metadata())
})

t.test('like any token: a drifted app is resynchronised with two codes, then its codes verify', async (t) => {
  // The phone's clock runs 10 minutes behind: its codes are 20 steps old, far outside the window.
  const behind = unix() - 600
  const drifted = totpBase32At(rosaKey, behind)
  await t.rejects(verifyCode(app.commands, { serial: rosaApp, userId: rosa.userId, code: drifted }, metadata()), { name: 'WrongCode' })
  const resynced = await resyncToken(app.commands, { serial: rosaApp, first: totpBase32At(rosaKey, behind - 30), second: totpBase32At(rosaKey, behind) },
    metadata({ actor: { type: 'admin', id: 'ada@example.com' } }))
  t.equal(resynced.drift, -20, 'the drift is now known: 20 steps behind')
  step()
  const ok = await verifyCode(app.commands, { serial: rosaApp, userId: rosa.userId, code: totpBase32At(rosaKey, unix() - 600) }, metadata())
  t.equal(ok.status, 'active', 'a code from the drifted app verifies')
})

t.test('removing the app retires it and destroys its key: it never goes back to an inventory', async (t) => {
  const b = await verified('rosa@example.com', 'RO-1')
  await b.get(`/security-info/methods/${rosaApp}/remove`)
  const removed = await b.post(`/security-info/methods/${rosaApp}/remove`, {})
  t.equal(removed.location, '/security-info?notice=removed')
  const token = (await sql<{ status: string; seed_fingerprint: string | null }>`select status, seed_fingerprint from tokens where serial = ${rosaApp}`.execute(database.db)).rows[0]
  t.same(token, { status: 'revoked', seed_fingerprint: null })
  t.equal((await sql`select 1 from token_secrets where serial = ${rosaApp}`.execute(database.db)).rows.length, 0, 'the key is destroyed')
  const events = (await sql<{ type: string }>`select type from events where stream_id = ${`token-${rosaApp}`} order by stream_version desc limit 2`.execute(database.db)).rows.map((r) => r.type)
  t.same(events, ['TokenSecretDestroyed', 'TokenRevoked'])
  // Nobody claims it as a hardware token.
  const claim = await b.post('/security-info/hardware-token/serial', { serial: rosaApp })
  t.equal(claim.status, 422)
})
