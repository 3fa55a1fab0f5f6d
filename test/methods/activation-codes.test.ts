// Activation codes (Defender's "Request a software token"): an admin asks, the code reaches the user by
// e-mail (the loopback mail server's copy is what the test types) or is shown once; the user redeems it at
// /activate with their password, is shown the key once, and activates with the app's first code (oathtool,
// from the key shown). Redeemed once; expired, used, unknown and someone else's codes get one answer.
import t from 'tap'
import { sql } from 'kysely'
import { setUserContact } from '../../src/commands/contacts.js'
import { assignPolicy, setPolicy } from '../../src/commands/policies.js'
import { appKey, startSetup } from '../../src/methods/authenticator-app/setup.js'
import { activateToken } from '../../src/commands/tokens.js'
import { createApiKey } from '../../src/commands/api-keys.js'
import { describe } from '../../src/audit/describe.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { INVALID_ACTIVATION } from '../../src/methods/authenticator-app/activation-codes.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { totpAt, totpBase32At } from '../helpers/oathtool.js'
import { received, smtpPeer } from '../helpers/peers.js'
import { seedOf } from '../helpers/seeds.js'
import { signedInAdmin, addAdmin } from '../helpers/staff.js'

const mail = await smtpPeer(t)
const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database, clock, logs } = await testApp(t, {
  PORT: String(port), PUBLIC_URL: BASE, TESSERA_DELIVERY_TIMEOUT_MS: '1000',
  TESSERA_DELIVERY_PROVIDERS: JSON.stringify([{ name: 'mail', type: 'smtp', url: mail.url, from: 'no-reply@example.com' }]),
})
await app.listen({ port, host: '127.0.0.1' })
// The delivery worker runs on the real clock; decisions on the test's, moved forward when a test needs it.
let offset = 0
Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
const unix = () => Math.floor(clock.now.getTime() / 1000)

await addAdmin(app, clock)
const key = await createApiKey(app.commands, { name: 'helpdesk', role: 'admin' }, metadata())
const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' }, payload: payload === undefined ? undefined : JSON.stringify(payload) })
const activate = (payload: unknown, ip = '10.0.0.1') =>
  app.inject({ method: 'POST', url: '/activate', headers: { 'content-type': 'application/json', accept: 'application/json' }, payload: JSON.stringify(payload), remoteAddress: ip })

const tom = await addUser(app, 'tom@example.com')
await setUserContact(app.commands, { upn: 'tom@example.com', email: 'tom@mail.example.com' }, metadata())
const uma = await addUser(app, 'uma@example.com')
const activationCodeIn = (body: string) => /\b([0-9A-Z]{4}(?:-[0-9A-Z]{4}){5})\b/.exec(body)?.[1]

let tomCode = ''

t.test('an admin asks for a software token for Tom: the code goes to his mailbox, the events say who and until when', async (t) => {
  const before = mail.messages.length
  const res = await api('POST', '/admin/api/users/tom@example.com/software-token', {})
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.match(body, { user: 'tom@example.com', delivery: 'email', to: 't•••@mail.example.com' })
  t.notOk('activationCode' in body, 'an e-mailed code is not in the answer')
  t.equal(res.headers['cache-control'], 'no-store')
  await received(mail.messages, before + 1)
  const message = mail.messages.at(-1)!
  t.equal(message.to, 'tom@mail.example.com')
  t.match(message.text, new RegExp(`go to ${BASE}/activate`))
  tomCode = activationCodeIn(message.text) ?? ''
  t.ok(tomCode, 'the mail holds the code in six groups of four')
  const events = (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`user-${tom.userId}`}
    and type like 'ActivationCode%' order by position`.execute(database.db)).rows
  t.match(events, [
    { type: 'ActivationCodeRequested', data: { userId: tom.userId, code: body.id, by: 'admin' }, metadata: { actor: { type: 'admin' } } },
    { type: 'ActivationCodeIssued', data: { code: body.id, delivery: 'email', to: 't•••@mail.example.com', expiresAt: body.expiresAt } },
  ])
  t.equal(new Date(body.expiresAt).getTime() - clock.now.getTime() > 6.9 * 86_400_000, true, "the policy's 7 days")
  t.match(describe({ type: events[0]!.type, streamId: `user-${tom.userId}`, data: events[0]!.data, metadata: events[0]!.metadata }, new Map([[tom.userId, 'tom@example.com']])),
    /requested a software token for tom@example\.com \(activation code ACT-/)
  t.notMatch(JSON.stringify(events), tomCode.replace(/-/g, ''), 'the code is in no event')
  t.notMatch(JSON.stringify(events), tomCode)
})

t.test('/activate: wrong password, someone else, then the right one: the key once, the first code, active', async (t) => {
  const b = new Browser(app)
  const form = await b.get('/activate')
  t.match(text(form.body), /Activate a software token Enter the activation code you were given, and sign in with your password\. Activation code .* Email or username Password Next/)

  const wrong = await b.post('/activate', { activationCode: tomCode, username: 'tom@example.com', password: 'not his password' })
  t.equal(wrong.status, 422)
  t.match(text(wrong.body), INVALID_ACTIVATION, 'a wrong password: the one answer')
  const failures = async (userId: string) => Number((await sql<{ n: string }>`select count(*) as n from events where type = 'UserSignInFailed' and stream_id = ${`user-${userId}`}`.execute(database.db)).rows[0]!.n)
  t.equal(await failures(tom.userId), 1, "a wrong password for the code's own account counts, as at sign-in")
  const other = await b.post('/activate', { activationCode: tomCode, username: 'uma@example.com', password: 'correct horse battery' })
  t.equal(other.status, 422)
  t.match(text(other.body), INVALID_ACTIVATION, "Uma's password with Tom's code: the one answer")
  const otherWrong = await b.post('/activate', { activationCode: tomCode, username: 'uma@example.com', password: 'a guess' })
  t.equal(text(otherWrong.body), text(other.body), "Uma's right and wrong passwords look the same: /activate is no oracle for them")
  t.equal(await failures(uma.userId), 0, "and nothing is counted against Uma's account")
  t.equal((await sql<{ status: string }>`select status from activation_codes where user_id = ${tom.userId}`.execute(database.db)).rows[0]!.status, 'issued', 'neither used it up')

  // Typed loosely: lower case, spaces for dashes.
  const shown = await b.post('/activate', { activationCode: tomCode.toLowerCase().replace(/-/g, ' '), username: 'tom@example.com', password: 'correct horse battery' })
  t.equal(shown.status, 200)
  t.equal(shown.headers['cache-control'], 'no-store')
  t.match(text(shown.body), /Set up your account in the app .*We show it only now.*Account name Tessera \(tom@example\.com\)/)
  t.match(shown.body, /<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  const appKey = /<code class="secret">([A-Z2-7 ]+)<\/code>/.exec(shown.body)![1]!.replace(/ /g, '')
  t.equal((await b.get('/activate/code')).status, 200)
  const done = await b.post('/activate/code', { code: totpBase32At(appKey, unix()) })
  t.equal(done.status, 200)
  t.match(text(done.body), /Authenticator app was successfully registered .*to sign in as tom@example\.com/)
  const serial = /serial number (APP-[0-9A-F]+)/.exec(text(done.body))![1]!

  const events = (await sql<{ stream_id: string; type: string; data: any }>`select stream_id, type, data from events
    where stream_id in (${`user-${tom.userId}`}, ${`token-${serial}`}) and position > (select min(position) from events where type = 'ActivationCodeRequested' and stream_id = ${`user-${tom.userId}`})
    order by position`.execute(database.db)).rows
  const codeId = events.find((e) => e.type === 'ActivationCodeIssued')!.data.code
  t.match(events.filter((e) => e.type !== 'ActivationCodeIssued' && e.type !== 'UserSignInFailed'), [
    { type: 'ActivationCodeRedeemed', data: { code: codeId, serial } },
    { type: 'SoftwareTokenCreated', data: { serial, userId: tom.userId, by: 'admin', activationCode: codeId } },
    { type: 'TokenActivated', data: { serial } },
    { type: 'SignInMethodAdded', data: { serial } },
  ])
  t.notMatch(JSON.stringify(events), appKey)
  t.notMatch(logs.join('\n'), appKey, 'the key is in no log line')
  t.notMatch(logs.join('\n'), tomCode, 'nor the activation code')

  // Redeemed once: the second time is the one answer, with the right password too.
  const again = await new Browser(app).post('/activate', { activationCode: tomCode, username: 'tom@example.com', password: 'correct horse battery' }, { csrf: null })
  t.equal(again.status, 403, 'a form without its CSRF token is refused')
  const b2 = new Browser(app)
  await b2.get('/activate')
  const used = await b2.post('/activate', { activationCode: tomCode, username: 'tom@example.com', password: 'correct horse battery' })
  t.equal(used.status, 422)
  t.match(text(used.body), INVALID_ACTIVATION)
  const unknown = await b2.post('/activate', { activationCode: 'ABCD-EFGH-JKMN-PQRS-TVWX-YZ01', username: 'tom@example.com', password: 'correct horse battery' })
  t.equal(text(unknown.body), text(used.body), 'an unknown code: the same page')
})

t.test('the JSON exchange for desktop apps: the URI once, then the first code', async (t) => {
  const shown = await api('POST', '/admin/api/users/uma@example.com/software-token', { delivery: 'show' })
  t.equal(shown.statusCode, 201)
  const { activationCode } = shown.json()
  t.match(activationCode, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}$/)
  const res = await activate({ activationCode, username: 'uma@example.com', password: 'correct horse battery' }, '10.0.0.2')
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json()
  t.match(body.otpauthUri, /^otpauth:\/\/totp\/Tessera:uma%40example\.com\?secret=[A-Z2-7]{32}&issuer=Tessera&algorithm=SHA1&digits=6&period=30$/)
  const secret = new URL(body.otpauthUri).searchParams.get('secret')!
  const wrong = await app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' }, payload: { setup: body.setup, code: '12345' } })
  t.equal(wrong.statusCode, 422)
  t.match(wrong.json(), { message: 'Enter the 6-digit code shown in the app.' })
  const ok = await app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' },
    payload: { setup: body.setup, code: totpBase32At(secret, unix()) } })
  t.equal(ok.statusCode, 201)
  t.match(ok.json(), { serial: body.serial, status: 'active' })
  const twice = await activate({ activationCode, username: 'uma@example.com', password: 'correct horse battery' }, '10.0.0.2')
  t.equal(twice.statusCode, 422)
  t.same(twice.json(), { error: 'ActivationRefused', message: INVALID_ACTIVATION })
  // The set-up handle did its work: it finishes nothing again.
  const stale = await app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' },
    payload: { setup: body.setup, code: totpBase32At(secret, unix() + 30) } })
  t.equal(stale.statusCode, 422)
  t.match(stale.json(), { message: /This set-up has expired/ })
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from tokens where user_id = ${uma.userId} and kind = 'software'`.execute(database.db)).rows[0]!.n), 1)
})

t.test('expired: the sweep records it, and the code gets the one answer', async (t) => {
  const res = await api('POST', '/admin/api/users/tom@example.com/software-token', { delivery: 'show' })
  const { activationCode, id } = res.json()
  clock.now = new Date(clock.now.getTime() + 8 * 86_400_000)
  const swept = await app.softwareTokens.sweep()
  t.equal(swept.codes, 1)
  const expired = (await sql<{ data: any; metadata: any }>`select data, metadata from events where type = 'ActivationCodeExpired' and data->>'code' = ${id}`.execute(database.db)).rows
  t.match(expired, [{ data: { userId: tom.userId, code: id, reason: 'expired' }, metadata: { actor: { type: 'system', id: 'software-tokens' } } }])
  t.equal((await app.softwareTokens.sweep()).codes, 0, 'recorded once')
  const late = await activate({ activationCode, username: 'tom@example.com', password: 'correct horse battery' }, '10.0.0.3')
  t.equal(late.statusCode, 422)
  t.same(late.json(), { error: 'ActivationRefused', message: INVALID_ACTIVATION })
  clock.now = new Date(Date.now())
})

t.test('a new code replaces the live one', async (t) => {
  const first = (await api('POST', '/admin/api/users/uma@example.com/software-token', { delivery: 'show' })).json()
  const second = (await api('POST', '/admin/api/users/uma@example.com/software-token', { delivery: 'show' })).json()
  t.match((await sql<{ data: any }>`select data from events where type = 'ActivationCodeExpired' and data->>'code' = ${first.id}`.execute(database.db)).rows, [{ data: { reason: 'replaced' } }])
  const old = await activate({ activationCode: first.activationCode, username: 'uma@example.com', password: 'correct horse battery' }, '10.0.0.4')
  t.same(old.json(), { error: 'ActivationRefused', message: INVALID_ACTIVATION })
  const current = await activate({ activationCode: second.activationCode, username: 'uma@example.com', password: 'correct horse battery' }, '10.0.0.4')
  t.equal(current.statusCode, 201)
})

t.test('rate limits: per code, and per address', async (t) => {
  const { activationCode } = (await api('POST', '/admin/api/users/tom@example.com/software-token', { delivery: 'show' })).json()
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await activate({ activationCode, username: 'tom@example.com', password: `guess ${i}` }, `10.1.0.${i}`)).statusCode)
  t.same(statuses, [422, 422, 422, 422, 422, 429], 'five tries per code in 15 minutes, from any address')
  const blocked = await activate({ activationCode, username: 'tom@example.com', password: 'correct horse battery' }, '10.1.1.1')
  t.equal(blocked.statusCode, 429, 'even the right password waits')
  const fromOne: number[] = []
  for (let i = 0; i < 21; i++) fromOne.push((await activate({ activationCode: `AAAA-AAAA-AAAA-AAAA-AAAA-AA${String(i).padStart(2, '0').replace(/0/g, 'B')}`, username: 'x@example.com', password: 'x' }, '10.2.0.1')).statusCode)
  t.equal(fromOne.filter((s) => s === 429).length, 1, 'twenty a minute from one address')
  t.equal(fromOne.at(-1), 429)
})

t.test('bad input: a clear 4xx, nothing written', async (t) => {
  const count = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
  const before = await count()
  for (const payload of [{ activationCode: ['A'], username: 'tom@example.com', password: 'x' }, { activationCode: { a: 1 }, username: 'x', password: 'x' },
    { activationCode: 'AAAA\u0000', username: 'x', password: 'x' }, { activationCode: 'A', username: 1, password: 'x' }]) {
    const res = await activate(payload, '10.3.0.1')
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json().message, /was not sent as text/)
  }
  const missing = await activate({ activationCode: '', username: '', password: '' }, '10.3.0.2')
  t.equal(missing.statusCode, 422)
  t.match(missing.json(), { message: 'Enter your activation code, your account and your password.' })
  const noSetup = await app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' }, payload: { code: '123456' } })
  t.equal(noSetup.statusCode, 422)
  t.equal(await count(), before)
  const api400 = await api('POST', '/admin/api/users/tom@example.com/software-token', { delivery: 'pigeon' })
  t.equal(api400.statusCode, 400)
  const noUser = await api('POST', '/admin/api/users/nobody@example.com/software-token', {})
  t.equal(noUser.statusCode, 404)
  const noAddress = await api('POST', '/admin/api/users/uma@example.com/software-token', { delivery: 'email' })
  t.equal(noAddress.statusCode, 409)
  t.match(noAddress.json(), { message: 'The user has no email address. Set one first, or show the code instead.' })
  t.equal(await count(), before)
})

t.test('a user requests a software token where the policy allows it, after a code', async (t) => {
  await importEntra(app, [`tom@example.com,TM-1,${seedOf('TM-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'TM-1', userId: tom.userId, name: 'Tom key', code: totpAt(seedOf('TM-1').hex, unix()) }, metadata())
  const b = new Browser(app)
  await b.signIn('tom@example.com')
  clock.now = new Date(clock.now.getTime() + 30_000)
  await b.get('/security-info/verify')
  await b.post('/security-info/verify', { code: totpAt(seedOf('TM-1').hex, unix()) })
  t.notMatch(text((await b.get('/security-info')).body), /Request a software token/, 'not offered by the default policy')
  const refused = await b.get('/security-info/software-token')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Your security policy does not let you request a software token\. Ask your administrator\./)
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, userRequestsSoftwareTokens: true } }, metadata())
  t.match(text((await b.get('/security-info')).body), /Request a software token/)
  await b.get('/security-info/software-token')
  const issued = await b.post('/security-info/software-token', {})
  t.equal(issued.status, 200)
  t.equal(issued.headers['cache-control'], 'no-store')
  const code = activationCodeIn(text(issued.body))
  t.ok(code, 'shown once on the page')
  t.match(text(issued.body), new RegExp(`enter this code and sign in with your password\\. It works once`))
  const requested = (await sql<{ data: any; metadata: any }>`select data, metadata from events where type = 'ActivationCodeRequested' order by position desc limit 1`.execute(database.db)).rows[0]
  t.match(requested, { data: { userId: tom.userId, by: 'self' }, metadata: { actor: { type: 'user', id: tom.userId } } })
  t.notMatch(text((await b.get('/security-info')).body), code!, 'no later page shows it')
  // A password alone does not ask for one.
  const bare = new Browser(app)
  await bare.signIn('tom@example.com')
  t.equal((await bare.get('/security-info/software-token')).location, '/security-info/verify')
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: DEFAULT_SETTINGS }, metadata())
})

t.test('an admin on the user page: shown once, or sent', async (t) => {
  const b = await signedInAdmin(app, clock)
  const page = await b.get('/admin/users/uma@example.com')
  t.match(text(page.body), /Software token .*Deliver the activation code By email \(the user has no address\) Show it to me once Request a software token/)
  const shown = await b.post('/admin/users/uma@example.com/software-token', { delivery: 'show' })
  t.equal(shown.status, 200)
  t.equal(shown.headers['cache-control'], 'no-store')
  t.match(text(shown.body), new RegExp(`Software token requested Give this activation code to uma@example\\.com\\. It is shown only now\\. [0-9A-Z]{4}(-[0-9A-Z]{4}){5} It works once, with the user's password, at ${BASE}/activate`))
  const before = mail.messages.length
  const sent = await b.post('/admin/users/tom@example.com/software-token', { delivery: 'email' })
  t.match(text(sent.body), /Activation code ACT-[0-9A-F]+ was sent by email to t•••@mail\.example\.com\./)
  t.notMatch(text(sent.body), /[0-9A-Z]{4}(-[0-9A-Z]{4}){5}/, 'an e-mailed code is not on the page')
  await received(mail.messages, before + 1)
  const bad = await b.post('/admin/users/tom@example.com/software-token', { delivery: 'carrier pigeon' })
  t.equal(bad.status, 422)
  // The temporary code's banner holds the code and nothing else.
  const temporary = await b.post('/admin/users/uma@example.com/temporary-code', { validDays: '1', oneTime: 'yes' })
  t.match(text(temporary.body), /Temporary code Give this code to uma@example\.com\. It is shown only now\. \d{4}-\d{4}-\d{4} It works once/)
})

t.test('races: one redemption per code, one token per key, and the most methods held', async (t) => {
  const { activationCode } = (await api('POST', '/admin/api/users/uma@example.com/software-token', { delivery: 'show' })).json()
  const both = await Promise.all(['10.4.0.1', '10.4.0.2'].map((ip) => activate({ activationCode, username: 'uma@example.com', password: 'correct horse battery' }, ip)))
  t.same(both.map((r) => r.statusCode).sort(), [201, 422], 'two redemptions at once: one wins')
  const winner = both.find((r) => r.statusCode === 201)!.json()
  const code = totpBase32At(new URL(winner.otpauthUri).searchParams.get('secret')!, unix())
  const finish = () => app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' }, payload: { setup: winner.setup, code } })
  const finished = await Promise.all([finish(), finish()])
  t.same(finished.map((r) => r.statusCode).sort(), [201, 422], 'the same key finished twice at once: one token')
  t.equal((await sql`select 1 from tokens where serial = ${winner.serial}`.execute(database.db)).rows.length, 1)

  // Vic may have one method; two set-ups finished at once add one.
  const vic = await addUser(app, 'vic@example.com')
  await setPolicy(app.commands, 'one', { name: 'One method', priority: 10, settings: { ...DEFAULT_SETTINGS, maxMethods: 1 } }, metadata())
  await assignPolicy(app.commands, 'one', { kind: 'user', id: vic.userId }, metadata())
  const setups = await Promise.all([1, 2].map(() => startSetup(app.commands, { userId: vic.userId, by: 'admin', activationCode: null, replace: false })))
  const keys = await Promise.all(setups.map((s) => appKey(app.commands, { handle: s.handle, userId: vic.userId, issuer: 'Tessera', account: 'vic@example.com' })))
  const results = await Promise.all(setups.map((s, i) => app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' },
    payload: { setup: s.handle, code: totpBase32At(keys[i]!.groups.join(''), unix()) } })))
  t.same(results.map((r) => r.statusCode).sort(), [201, 422])
  t.match(results.find((r) => r.statusCode === 422)!.json(), { message: 'You already have 1 authenticator method. Remove one before adding another.' })
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from tokens where user_id = ${vic.userId} and status = 'active'`.execute(database.db)).rows[0]!.n), 1)
})

t.test('what ends a code or a set-up: a password reset, a disabled account, the methods a self-requested code relied on; a full account keeps its code', async (t) => {
  const wendy = await addUser(app, 'wendy@example.com')
  const codeFor = async () => (await api('POST', '/admin/api/users/wendy@example.com/software-token', { delivery: 'show' })).json()
  const redeem = (code: string) => activate({ activationCode: code, username: 'wendy@example.com', password: 'correct horse battery' }, '10.5.0.1')
  const reasons = async () => (await sql<{ data: any }>`select data from events where type = 'ActivationCodeExpired' and stream_id = ${`user-${wendy.userId}`} order by position`.execute(database.db)).rows.map((r) => r.data.reason)

  // Disabled after redeeming: the key shown can no longer be bound, and a live code is ended.
  const redeemed = (await redeem((await codeFor()).activationCode)).json()
  const live = await codeFor()
  await app.inject({ method: 'POST', url: '/admin/api/users/wendy@example.com/disable', headers: { authorization: `Bearer ${key.key}` } })
  const finish = await app.inject({ method: 'POST', url: '/activate/code', headers: { 'content-type': 'application/json' },
    payload: { setup: redeemed.setup, code: totpBase32At(new URL(redeemed.otpauthUri).searchParams.get('secret')!, unix()) } })
  t.equal(finish.statusCode, 422)
  t.match(finish.json(), { message: /This set-up has expired/ })
  t.same(await reasons(), ['account-disabled'], 'the live one ended; the redeemed one was done already')
  await app.inject({ method: 'POST', url: '/admin/api/users/wendy@example.com/enable', headers: { authorization: `Bearer ${key.key}` } })
  t.equal((await redeem(live.activationCode)).statusCode, 422, 'the code ended with the disable stays ended')

  // A password reset ends the live code.
  await codeFor()
  await app.inject({ method: 'POST', url: '/admin/api/users/wendy@example.com/reset-password', headers: { authorization: `Bearer ${key.key}` } })
  t.same((await reasons()).at(-1), 'password-reset')
  await sql`update user_credentials set password_hash = (select password_hash from user_credentials where user_id = ${tom.userId}), must_change = false where user_id = ${wendy.userId}`.execute(database.db)

  // At the most methods: refused before the code is used up.
  await setPolicy(app.commands, 'wendy', { name: 'One method', priority: 5, settings: { ...DEFAULT_SETTINGS, maxMethods: 1, userRequestsSoftwareTokens: true } }, metadata())
  await assignPolicy(app.commands, 'wendy', { kind: 'user', id: wendy.userId }, metadata())
  await importEntra(app, [`wendy@example.com,WE-1,${seedOf('WE-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'WE-1', userId: wendy.userId, name: 'Fob', code: totpAt(seedOf('WE-1').hex, unix()) }, metadata())
  const full = await codeFor()
  const refused = await redeem(full.activationCode)
  t.equal(refused.statusCode, 409)
  t.match(refused.json(), { message: 'You already have 1 authenticator method. Remove one before adding another.' })
  t.equal((await sql<{ status: string }>`select status from activation_codes where id = ${full.id}`.execute(database.db)).rows[0]!.status, 'issued', 'not used up')

  // A code Wendy asked for herself ends when she removes the method that let her ask.
  const b = new Browser(app)
  await b.signIn('wendy@example.com')
  clock.now = new Date(clock.now.getTime() + 30_000)
  await b.get('/security-info/verify')
  await b.post('/security-info/verify', { code: totpAt(seedOf('WE-1').hex, unix()) })
  await b.get('/security-info/software-token')
  const mine = activationCodeIn(text((await b.post('/security-info/software-token', {})).body))!
  const self = (await sql<{ expires_at: Date; created_at: Date }>`select expires_at, created_at from activation_codes where user_id = ${wendy.userId} and by = 'self'`.execute(database.db)).rows[0]!
  t.equal(self.expires_at.getTime() - self.created_at.getTime(), 86_400_000, 'a code the user asks for lasts a day')
  await b.get('/security-info/methods/WE-1/remove')
  await b.post('/security-info/methods/WE-1/remove', {})
  t.same((await reasons()).slice(-2), ['replaced', 'method-removed'], "her own code ended with her last method; the admin's had been replaced by it")
  t.equal((await redeem(mine)).statusCode, 422, 'the password alone adds nothing now')
})

t.test('an admin revokes a live code: it works no more, and the audit says who', async (t) => {
  const xena = await addUser(app, 'xena@example.com')
  const { activationCode, id } = (await api('POST', '/admin/api/users/xena@example.com/software-token', { delivery: 'show' })).json()
  const b = await signedInAdmin(app, clock)
  const page = text((await b.get('/admin/users/xena@example.com')).body)
  t.match(page, new RegExp(`Activation code ${id} \\(asked for by an admin\\) works until .* Revoke it`))
  const revoked = await b.post('/admin/users/xena@example.com/software-token/revoke', {})
  t.match(text(revoked.body), /The activation code was revoked: it no longer works\./)
  t.notMatch(text(revoked.body), /Revoke it/)
  t.equal((await activate({ activationCode, username: 'xena@example.com', password: 'correct horse battery' }, '10.6.0.1')).statusCode, 422)
  const ended = (await sql<{ data: any; metadata: any }>`select data, metadata from events where type = 'ActivationCodeExpired' and data->>'code' = ${id}`.execute(database.db)).rows
  t.match(ended, [{ data: { userId: xena.userId, reason: 'revoked' }, metadata: { actor: { type: 'admin', id: 'ada@example.com' } } }])
  t.match(describe({ type: 'ActivationCodeExpired', streamId: `user-${xena.userId}`, data: ended[0]!.data, metadata: ended[0]!.metadata }, new Map([[xena.userId, 'xena@example.com']])),
    /activation code ACT-[0-9A-F]+ for xena@example\.com was revoked by admin ada@example\.com/)
  // Through the API: the count of codes it ended.
  await api('POST', '/admin/api/users/xena@example.com/software-token', { delivery: 'show' })
  const res = await app.inject({ method: 'DELETE', url: '/admin/api/users/xena@example.com/software-token', headers: { authorization: `Bearer ${key.key}` } })
  t.same(res.json(), { user: 'xena@example.com', revoked: 1 })
  const none = await app.inject({ method: 'DELETE', url: '/admin/api/users/xena@example.com/software-token', headers: { authorization: `Bearer ${key.key}` } })
  t.same(none.json(), { user: 'xena@example.com', revoked: 0 })
})
