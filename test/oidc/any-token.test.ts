// Enter code takes a code from any of the user's tokens, with no list to choose from (as Entra and
// privacyIDEA do); a code that matches none counts on every token alike; a method added in the middle
// of a sign-in proves possession, so the sign-in goes on at mfa; amr names the kind of method used.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { registerClient } from '../../src/commands/clients.js'
import { setPolicy } from '../../src/commands/policies.js'
import { activateToken } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { totpAt } from '../helpers/oathtool.js'
import { freePort } from '../helpers/net.js'
import { seedOf } from '../helpers/seeds.js'

const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database, clock, logs } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE })
await app.listen({ port, host: '127.0.0.1' })
let now = Math.floor(Date.now() / 1000)
clock.now = new Date(now * 1000)
const next = () => {
  now += 30
  clock.now = new Date(now * 1000)
}
const code = (serial: string) => totpAt(seedOf(serial).hex, now)

const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
const alice = await addUser(app, 'alice@example.com')
await addUser(app, 'newbie@example.com')
const [OLD, NEW, SPARE] = ['5100001', '5100002', '5100003']
await importEntra(app, [OLD, NEW, SPARE].map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
await activateToken(app.commands, { serial: OLD, userId: alice.userId, name: 'Old fob', code: code(OLD) }, metadata())
next()
await activateToken(app.commands, { serial: NEW, userId: alice.userId, name: 'New fob', code: code(NEW) }, metadata())
next()
// Three wrong codes lock a token here, so that locking is reached within the per-user rate limit.
await setPolicy(app.commands, 'default', { name: 'Default', priority: 0, settings: { ...DEFAULT_SETTINGS, lockThreshold: 3 } }, metadata({ actor: { type: 'admin', id: 'root' } }))
const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })

async function toEnterCode(agent: Agent, upn: string) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const page = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn, password: 'correct horse battery' }))
  return { page, verifier, nonce, path: new URL(page.url).pathname }
}
const events = async (serial: string) =>
  (await sql<{ type: string }>`select type from events where stream_id = ${`token-${serial}`} order by stream_version`.execute(database.db)).rows.map((r) => r.type)

t.test('a code from the older of two tokens signs in, with no token to choose', async (t) => {
  const agent = new Agent(BASE)
  const at = await toEnterCode(agent, 'alice@example.com')
  t.notMatch(at.page.body, /<select/, 'no list of tokens to pick from')
  t.match(at.page.body, /A code from any of your tokens: /)
  const done = await agent.follow(await agent.post(`${at.path}/code`, { code: code(OLD) }), CALLBACK)
  t.match(done.location, /^https:\/\/rp\.example\.com\/callback\?code=/)
  const tokens = await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: at.verifier, expectedNonce: at.nonce, idTokenExpected: true })
  t.same(tokens.claims()!.amr, ['pwd', 'otp', 'hwk', 'mfa'], 'amr names a hardware token')
  t.equal((await events(OLD)).at(-1), 'OtpVerified', 'the matching token is the one used')
  t.notOk((await events(NEW)).includes('OtpRejected'), 'the other token counts no failure')
  next()
})

t.test('the same code again is refused: the token that matched it saw it replayed', async (t) => {
  const agent = new Agent(BASE)
  const at = await toEnterCode(agent, 'alice@example.com')
  const first = await agent.post(`${at.path}/code`, { code: code(NEW) })
  t.equal(first.status, 303)
  const other = new Agent(BASE)
  const again = await toEnterCode(other, 'alice@example.com')
  const replay = await other.post(`${again.path}/code`, { code: code(NEW) })
  t.equal(replay.status, 422)
  t.match(replay.body, /That code didn&#39;t work/)
  t.equal((await events(NEW)).at(-1), 'OtpRejected', 'recorded as a failure of the token that matched')
  next()
})

t.test('a code that matches no token counts on every token alike, and they lock together', async (t) => {
  // A good code from the token that saw the replay: both start from no failures.
  const warm = new Agent(BASE)
  t.equal((await warm.post(`${(await toEnterCode(warm, 'alice@example.com')).path}/code`, { code: code(NEW) })).status, 303)
  next()
  const agent = new Agent(BASE)
  const at = await toEnterCode(agent, 'alice@example.com')
  const before = [(await events(OLD)).length, (await events(NEW)).length]
  let last = ''
  for (let i = 0; i < 3; i++) last = (await agent.post(`${at.path}/code`, { code: String(100000 + i) })).body
  const oldEvents = (await events(OLD)).slice(before[0])
  const newEvents = (await events(NEW)).slice(before[1])
  t.same(oldEvents, ['OtpRejected', 'OtpRejected', 'OtpRejected', 'TokenLocked'])
  t.same(newEvents, oldEvents, 'the same on both: no innocent token locks first')
  t.match(last, /This token is locked after too many wrong codes/)
  const right = await agent.post(`${at.path}/code`, { code: code(OLD) })
  t.equal(right.status, 422, 'locked tokens refuse even a right code')
})

t.test('a method added in the middle of a sign-in proves possession: the sign-in goes on at mfa', async (t) => {
  const agent = new Agent(BASE)
  const at = await toEnterCode(agent, 'newbie@example.com')
  t.match(at.page.body, /<h1>Add a sign-in method<\/h1>/)
  const add = await agent.follow(await agent.get(`${at.path}/add-method`))
  t.match(add.body, /Which method would you like to add\?/)
  await agent.get('/security-info/hardware-token/serial')
  await agent.post('/security-info/hardware-token/serial', { serial: SPARE })
  await agent.get('/security-info/hardware-token/name')
  await agent.post('/security-info/hardware-token/name', { name: 'Newbie fob' })
  await agent.get('/security-info/hardware-token/code')
  const done = await agent.follow(await agent.post('/security-info/hardware-token/code', { code: code(SPARE) }))
  t.match(done.body, /Your hardware token has been added/)
  const back = /href="(\/interaction\/[^"]+)"/.exec(done.body)?.[1]
  t.ok(back, 'Done goes back to the sign-in')
  const callback = await agent.follow(await agent.get(back!), CALLBACK)
  t.match(callback.location, /^https:\/\/rp\.example\.com\/callback\?code=/, 'no second code is asked for')
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callback.location!), { pkceCodeVerifier: at.verifier, expectedNonce: at.nonce, idTokenExpected: true })
  t.equal(tokens.claims()!.acr, LEVELS.mfa)
  t.same(tokens.claims()!.amr, ['pwd', 'otp', 'hwk', 'mfa'])
  t.same(await events(SPARE), ['TokenImported', 'TokenAssigned', 'TokenRenamed', 'TokenActivated'], 'no failure counted for the code the token still shows')
})

t.test('every ID token carries acr, amr and auth_time, even when the application asks for no level', async (t) => {
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const callback = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'newbie@example.com', password: 'correct horse battery' }), CALLBACK)
  const claims = (await oidc.authorizationCodeGrant(config, new URL(callback.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true })).claims()!
  t.equal(claims.acr, LEVELS.pwd, 'the level actually reached')
  t.same(claims.amr, ['pwd'])
  t.type(claims.auth_time, 'number')
})

t.test("the claims parameter's essential acr asks for a level as acr_values does (OpenID Connect Core 5.5.1.1)", async (t) => {
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const claims = JSON.stringify({ id_token: { acr: { essential: true, values: [LEVELS.mfa] } } })
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', nonce, claims,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const page = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'newbie@example.com', password: 'correct horse battery' }))
  t.match(page.body, /<h1>Enter code<\/h1>/, 'a code is asked for')
  next()
  const callback = await agent.follow(await agent.post(`${new URL(page.url).pathname}/code`, { code: code(SPARE) }), CALLBACK)
  const idToken = (await oidc.authorizationCodeGrant(config, new URL(callback.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true })).claims()!
  t.equal(idToken.acr, LEVELS.mfa)
})

t.test('discovery advertises only the response type every client may use', async (t) => {
  const meta = await (await fetch(`${BASE}/oidc/.well-known/openid-configuration`)).json()
  t.same(meta.response_types_supported, ['code'])
})

t.test("the provider's error pages speak plainly, with a reference that is in the log", async (t) => {
  const res = await fetch(`${BASE}/oidc/auth?client_id=nobody&redirect_uri=${encodeURIComponent(CALLBACK)}&response_type=code&scope=openid`)
  const body = await res.text()
  t.equal(res.status, 400)
  t.match(body, /The application is not registered here\./)
  t.notMatch(body, /client is invalid|invalid_client/, "never the library's own words")
  const reference = /Reference: ([0-9a-f-]{36})/.exec(body)?.[1]
  t.ok(reference, 'a reference for the helpdesk')
  t.ok(logs.some((line) => line.includes(reference!) && line.includes('invalid_client')), 'the log has it with the error')
})

t.test('an error in the middle of a sign-in offers the way back to the application, with its reference', async (t) => {
  const agent = new Agent(BASE)
  const at = await toEnterCode(agent, 'alice@example.com')
  const forged = await agent.post(`${at.path}/code`, { code: '123456' }, { csrf: false })
  t.equal(forged.status, 403)
  t.match(forged.body, /This form has expired/)
  t.match(forged.body, /Reference: /)
  t.match(forged.body, /<button type="submit" class="primary">Back to the application<\/button>/)
  const action = /<form method="post" action="([^"]+)"/.exec(forged.body)?.[1]
  t.equal(action, `${at.path}/abort`)
  const back = await agent.follow(await agent.post(action!, {}), CALLBACK)
  t.match(back.location, /^https:\/\/rp\.example\.com\/callback\?error=access_denied/, 'the application gets an OpenID error it understands')
})

t.test('claims asked for by name, and an essential acr the gateway does not know, end the sign-in without a loop', async (t) => {
  const start = async (claims: string) => {
    const agent = new Agent(BASE)
    const verifier = oidc.randomPKCECodeVerifier()
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid email', nonce: 'n', claims,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
    const login = await agent.follow(await agent.get(url.toString()))
    return agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'newbie@example.com', password: 'correct horse battery' }), CALLBACK)
  }
  const named = await start(JSON.stringify({ userinfo: { email: null }, id_token: { email: { essential: true } } }))
  t.match(named.location, /^https:\/\/rp\.example\.com\/callback\?code=/, 'the claims asked for by name are granted')
  const unknown = await start(JSON.stringify({ id_token: { acr: { essential: true, values: ['urn:example:loa:gold'] } } }))
  t.match(unknown.location, /^https:\/\/rp\.example\.com\/callback\?error=unmet_authentication_requirements/, 'an acr it cannot give is an error for the application')
})
