// Phone and Email on the pages: added like any method (a code from an existing one first), the code typed
// being the one the SMS centre or the mail server received; Verify your identity and the OpenID "Enter
// code" send a code only when asked, say where it went, or say in a few seconds that it could not go; the
// ID token's amr names the method used.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { registerClient } from '../../src/commands/clients.js'
import { setPolicy } from '../../src/commands/policies.js'
import { activateToken } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { freePort } from '../helpers/net.js'
import { totpAt } from '../helpers/oathtool.js'
import { codeIn, received, smscPeer, smtpPeer } from '../helpers/peers.js'
import { seedOf } from '../helpers/seeds.js'

const smsc = await smscPeer(t)
const mail = await smtpPeer(t)
const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database, clock } = await testApp(t, {
  PORT: String(port), PUBLIC_URL: BASE, TESSERA_DELIVERY_TIMEOUT_MS: '500',
  TESSERA_DELIVERY_PROVIDERS: JSON.stringify([
    { name: 'smsc', type: 'smpp', url: smsc.url },
    { name: 'mail', type: 'smtp', url: mail.url, from: 'no-reply@example.com' },
  ]),
})
await app.listen({ port, host: '127.0.0.1' })
let offset = 0
Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'] } }, metadata())
const unix = () => Math.floor(clock.now.getTime() / 1000)

// Rosa has a hardware token; she adds her phone with a code from it.
const rosa = await addUser(app, 'rosa@example.com')
await importEntra(app, [`rosa@example.com,RO-1,${seedOf('RO-1').b32},30,Token2,C202`])
await activateToken(app.commands, { serial: 'RO-1', userId: rosa.userId, name: 'Rosa key', code: totpAt(seedOf('RO-1').hex, unix()) }, metadata())

t.test('Security info > Add sign-in method > Phone: the number, the texted code, registered', async (t) => {
  const b = new Browser(app)
  await b.signIn('rosa@example.com')
  clock.now = new Date(clock.now.getTime() + 30_000)
  await b.get('/security-info/verify')
  t.equal((await b.post('/security-info/verify', { code: totpAt(seedOf('RO-1').hex, unix()) })).location, '/security-info/add')
  const add = text((await b.get('/security-info/add')).body)
  t.match(add, /Phone Get a code by text message\. Less safe than an app or a hardware token\./)
  t.equal((await b.post('/security-info/add', { method: 'phone' })).location, '/security-info/phone')

  const form = await b.get('/security-info/phone')
  t.match(text(form.body), /Text messages are the least safe way to sign in\. .*SIM swap.* Safer: Hardware token/)
  t.match(form.body, /<option value="GB" selected>United Kingdom \(\+44\)<\/option>/)
  const bad = await b.post('/security-info/phone', { country: 'GB', number: '12' })
  t.equal(bad.status, 422)
  t.match(text(bad.body), /That doesn't look like a phone number\. Check the country code and the number\./)
  const landline = await b.post('/security-info/phone', { country: 'GB', number: '020 7946 0018' })
  t.match(text(landline.body), /That number cannot receive text messages\. Enter a mobile number\./)
  t.equal((await database.db.selectFrom('tokens').select('serial').where('user_id', '=', rosa.userId).execute()).length, 1, 'refusals register nothing')

  const sent = await b.post('/security-info/phone', { country: 'GB', number: '07400 123456' })
  t.equal(sent.location, '/security-info/phone/code?sent=1')
  const codePage = await b.follow(sent)
  t.match(text(codePage.body), /We sent a code to \+44 ••• ••• 456\. Enter the 6-digit code we sent to \+44 ••• ••• 456\./)
  await received(smsc.messages)
  t.equal(smsc.messages.at(-1)!.to, '+447400123456', 'in E.164')
  const wrong = await b.post('/security-info/phone/code', { code: codeIn(smsc.messages.at(-1)) === '000000' ? '111111' : '000000' })
  t.equal(wrong.status, 422)
  t.match(text(wrong.body), /That code didn't work/)
  const done = await b.post('/security-info/phone/code', { code: codeIn(smsc.messages.at(-1)) })
  t.match(done.location, /^\/security-info\/phone\/done\?serial=PHONE-/)
  t.match(text((await b.follow(done)).body), /Your phone was registered We'll send a code to \+44 ••• ••• 456 when you sign in and choose it\./)
  t.match(text((await b.get('/security-info')).body), /Phone Phone/)
})

t.test('Verify your identity sends a code only when asked, and says where it went', async (t) => {
  const b = new Browser(app)
  await b.signIn('rosa@example.com')
  const before = smsc.messages.length
  const page = await b.get('/security-info/verify')
  t.match(text(page.body), /Before you add a sign-in method, enter a code from one of the sign-in methods you already have\. Get a code: Text \+44 ••• ••• 456/)
  t.equal(smsc.messages.length, before, 'no code sent on page load')
  const serial = /name="serial" value="(PHONE-[^"]+)"/.exec(page.body)![1]!
  const sent = await b.post('/security-info/verify/send', { serial })
  t.equal(sent.status, 200)
  t.match(text(sent.body), /We sent a code to \+44 ••• ••• 456\. It expires in 5 minutes\./)
  await received(smsc.messages, before + 1)
  t.equal((await b.post('/security-info/verify', { code: codeIn(smsc.messages.at(-1)) })).location, '/security-info/add')

  const other = await b.post('/security-info/verify/send', { serial: 'RO-1' })
  t.equal(other.status, 422)
  t.match(text(other.body), /Choose one of your phones or email addresses\./, 'a hardware token is sent nothing')
})

t.test('an SMS centre that refuses: the user is told within a few seconds, and nothing hangs', async (t) => {
  const b = new Browser(app)
  await b.signIn('rosa@example.com')
  const page = await b.get('/security-info/verify')
  const serial = /name="serial" value="(PHONE-[^"]+)"/.exec(page.body)![1]!
  smsc.mode = 'refuse'
  const started = Date.now()
  const failed = await b.post('/security-info/verify/send', { serial })
  smsc.mode = 'accept'
  t.equal(failed.status, 503)
  t.match(text(failed.body), /We couldn't send a text right now\. Try again in a minute, or choose another way to verify\./)
  t.ok(Date.now() - started < 4500, `answered in ${Date.now() - started} ms`)
})

t.test('a policy without phones: the page says so and registers nothing', async (t) => {
  const sam = await addUser(app, 'sam@example.com')
  await setPolicy(app.commands, 'no-phones', { name: 'No phones', priority: 10, settings: { ...DEFAULT_SETTINGS } }, metadata())
  const { assignPolicy } = await import('../../src/commands/policies.js')
  await assignPolicy(app.commands, 'no-phones', { kind: 'user', id: sam.userId }, metadata())
  const b = new Browser(app)
  await b.signIn('sam@example.com')
  const refused = await b.get('/security-info/phone')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Your security policy does not allow a phone as a sign-in method\./)
  t.notMatch(text((await b.get('/security-info/add')).body), /Phone Get a code/)
})

t.test('an application asking for mfa: Enter code, Text me, the texted code, amr sms', async (t) => {
  const CALLBACK = 'https://rp.example.com/callback'
  const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
  const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const interaction = new URL(login.url).pathname
  const before = smsc.messages.length
  const codePage = await agent.follow(await agent.post(`${interaction}/login`, { upn: 'rosa@example.com', password: 'correct horse battery' }))
  t.match(text(codePage.body), /Payroll asks for a code to confirm it's you\. Enter the code displayed on your token, or get one sent to you\. Get a code: Text \+44 ••• ••• 456/)
  t.equal(smsc.messages.length, before, 'nothing sent before the user asks')
  const serial = /name="serial" value="(PHONE-[^"]+)"/.exec(codePage.body)![1]!
  const sent = await agent.post(`${interaction}/send`, { serial })
  t.equal(sent.status, 200)
  t.match(text(sent.body), /We sent a code to \+44 ••• ••• 456\. It expires in 5 minutes\./)
  await received(smsc.messages, before + 1)
  const done = await agent.follow(await agent.post(`${interaction}/code`, { code: codeIn(smsc.messages.at(-1)) }), 'https://rp.example.com')
  const claims = (await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce })).claims()!
  t.equal(claims.acr, LEVELS.mfa)
  t.same(claims.amr, ['pwd', 'sms', 'mfa'], 'amr names the text message')
  const issued = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`token-${serial}`} and type in ('ChallengeIssued', 'OtpVerified') order by stream_version desc limit 2`.execute(database.db)).rows
  t.match(issued, [{ type: 'OtpVerified', data: { relyingApplication: 'payroll' } }, { type: 'ChallengeIssued' }])
})

t.test('an application asking for mfa-unrestricted: a texted code is not offered nor taken; the hardware token is', async (t) => {
  const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', {}, oidc.None(), { execute: [oidc.allowInsecureRequests] })
  t.ok((config.serverMetadata().acr_values_supported ?? []).includes(LEVELS.mfaUnrestricted), 'advertised')
  const secret = (await import('../../src/commands/clients.js')).rotateClientSecret
  const fresh = await secret(app.commands, 'payroll', metadata())
  const client = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: fresh }, oidc.ClientSecretBasic(fresh), { execute: [oidc.allowInsecureRequests] })
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const url = oidc.buildAuthorizationUrl(client, { redirect_uri: 'https://rp.example.com/callback', scope: 'openid', acr_values: LEVELS.mfaUnrestricted,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const interaction = new URL(login.url).pathname
  const codePage = await agent.follow(await agent.post(`${interaction}/login`, { upn: 'rosa@example.com', password: 'correct horse battery' }))
  t.match(text(codePage.body), /Payroll asks for a code from a hardware token to confirm it's you: a text message or an email is not enough for it\./)
  t.notMatch(text(codePage.body), /Text \+44/, 'the phone is not offered')
  const serial = (await database.db.selectFrom('tokens').select('serial').where('user_id', '=', rosa.userId).where('kind', '=', 'sms').executeTakeFirstOrThrow()).serial
  const before = smsc.messages.length
  const send = await agent.post(`${interaction}/send`, { serial })
  t.equal(send.status, 422)
  t.match(text(send.body), /Payroll needs a code from a hardware token: a text message or an email is not enough\./)
  t.equal(smsc.messages.length, before, 'nothing is sent that the sign-in could not take')
  // A code texted for another purpose moments ago is refused here too.
  const b = new Browser(app)
  await b.signIn('rosa@example.com')
  await b.post('/security-info/verify/send', { serial })
  await received(smsc.messages, before + 1)
  const refused = await agent.post(`${interaction}/code`, { code: codeIn(smsc.messages.at(-1)) })
  t.equal(refused.status, 422, 'the texted code is refused')
  clock.now = new Date(clock.now.getTime() + 30_000)
  const done = await agent.follow(await agent.post(`${interaction}/code`, { code: totpAt(seedOf('RO-1').hex, unix()) }), 'https://rp.example.com')
  const claims = (await oidc.authorizationCodeGrant(client, new URL(done.location!), { pkceCodeVerifier: verifier })).claims()!
  t.equal(claims.acr, LEVELS.mfaUnrestricted)
  t.same(claims.amr, ['pwd', 'otp', 'hwk', 'mfa'])
})

t.test('over the send budget, a new number is refused before anything is registered', async (t) => {
  const tom = await addUser(app, 'tom@example.com')
  await importEntra(app, [`tom@example.com,TO-1,${seedOf('TO-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'TO-1', userId: tom.userId, name: 'Tom key', code: totpAt(seedOf('TO-1').hex, unix()) }, metadata())
  const { assignPolicy } = await import('../../src/commands/policies.js')
  await setPolicy(app.commands, 'one-text', { name: 'One text an hour', priority: 5, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms'], sendsPerHour: 1 } }, metadata())
  await assignPolicy(app.commands, 'one-text', { kind: 'user', id: tom.userId }, metadata())
  const b = new Browser(app)
  await b.signIn('tom@example.com')
  clock.now = new Date(clock.now.getTime() + 30_000)
  await b.get('/security-info/verify')
  await b.post('/security-info/verify', { code: totpAt(seedOf('TO-1').hex, unix()) })
  await b.get('/security-info/phone')
  t.equal((await b.post('/security-info/phone', { country: 'GB', number: '07400 123491' })).location, '/security-info/phone/code?sent=1')
  const tokens = async () => (await database.db.selectFrom('tokens').select('serial').where('user_id', '=', tom.userId).execute()).length
  const before = await tokens()
  await b.get('/security-info/phone')
  const refused = await b.post('/security-info/phone', { country: 'GB', number: '07400 123492' })
  t.equal(refused.status, 429)
  t.match(text(refused.body), /You asked for too many codes\. Wait \d+ minutes, or choose another way to verify\./)
  t.equal(await tokens(), before, 'the second number was not registered')
})
