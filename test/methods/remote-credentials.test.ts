// Remote credentials end to end, against real peers on loopback: a VIP-style SOAP service over HTTPS with
// mutual TLS (its own certificate authority) and FreeRADIUS from Debian. The codes typed come from what
// those services hold (oathtool for the VIP credential's TOTP, the RADIUS users file), never from our code.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { setPolicy } from '../../src/commands/policies.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { addUser, Browser, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { startFreeRadius } from '../helpers/freeradius.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { startVipServer } from '../helpers/vip-server.js'
import { tessera } from '../helpers/cli.js'
import { activateToken } from '../../src/commands/tokens.js'
import { importEntra } from '../helpers/app.js'

const VIP_SEED = seedOf('VSMT12345678').hex
const MASTER = randomBytes(32).toString('base64')
const { app, database, clock } = await testApp(t, { TESSERA_MASTER_KEY: MASTER })
// The real clock: the VIP service computes its codes from it.
let offset = 0
Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
const vipCode = () => totpAt(VIP_SEED, Math.floor(Date.now() / 1000))
const vipCredentials: Record<string, { code: string | (() => string); state?: 'disabled' }> = {
  VSMT12345678: { code: vipCode },
  VSMT00000002: { code: '111111', state: 'disabled' },
  VSMT00000003: { code: vipCode },
  VSMT00000004: { code: vipCode },
}
const vip = await startVipServer(t, { credentials: vipCredentials })
const radius = await startFreeRadius(t, { users: { carol: '482915', dave: '604213' }, secret: 'radius-shared-secret' })
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000,
  settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'remote', 'temporary_code'], lockThreshold: 3 } }, metadata())
await addAdmin(app, clock)
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const api = (method: 'PUT' | 'POST' | 'GET' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url: `/admin/api${url}`, payload, headers: { authorization: `Bearer ${key}` } })
const eventsOf = async (stream: string) =>
  (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${stream} order by stream_version`.execute(database.db)).rows
const countEvents = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
const vipService = (extra: object = {}) => ({ name: 'Symantec VIP', protocol: 'vip', url: vip.url, pkcs12: vip.clientPfx.toString('base64'),
  passphrase: vip.clientPassphrase, caPem: vip.caPem.toString(), timeoutSeconds: 2, codeLifetimeSeconds: 300, ...extra })

/** A user signed in with their password, on the page that asks for a code. */
async function atVerify(upn: string) {
  const b = new Browser(app)
  await b.signIn(upn)
  await b.get('/security-info/verify')
  return b
}

t.test('a VIP service is configured through the API; bad configurations are refused in words and write nothing', async (t) => {
  const before = await countEvents()
  const cases: [object, RegExp][] = [
    [vipService({ url: 'http://127.0.0.1/val/soap' }), /must be a full https:\/\/ address/],
    [vipService({ passphrase: 'wrong' }), /does not open with this password/],
    [vipService({ pkcs12: Buffer.from('not a pkcs12 file').toString('base64') }), /does not open with this password, or is not a PKCS#12 file/],
    [vipService({ pkcs12: undefined }), /Give the client certificate/],
    [vipService({ caPem: 'not pem' }), /must be PEM/],
    [vipService({ timeoutSeconds: 0 }), /timeout \(seconds\) must be a whole number from 1 to 30/],
    [vipService({ name: ['a'] }), /.+/],
    [vipService({ name: 'a\u0000b' }), /Give the service a name/],
  ]
  for (const [body, message] of cases) {
    const res = await api('PUT', '/remote-services/vip', body)
    t.equal(res.statusCode, 400, `${JSON.stringify(body).slice(0, 60)}: 400`)
    t.match(res.json().message, message)
  }
  t.equal((await api('PUT', '/remote-services/Not_An_Id', vipService())).statusCode, 400, 'an id of the wrong shape')
  t.equal(await countEvents(), before, 'nothing was written')

  const saved = await api('PUT', '/remote-services/vip', vipService())
  t.equal(saved.statusCode, 200, saved.body)
  t.match(saved.json(), { id: 'vip', settings: { protocol: 'vip', url: vip.url, certificate: { subject: /CN=/ } }, secretFingerprint: /^[0-9a-f]{32}$/ })
  const events = await eventsOf('remote-service-vip')
  t.same(events.map((e) => e.type), ['RemoteServiceConfigured'])
  const all = JSON.stringify((await sql`select data, metadata from events`.execute(database.db)).rows)
  t.notOk(all.includes(vip.clientPassphrase), 'the PKCS#12 password is in no event')
  t.notOk(all.includes(vip.clientPfx.toString('base64').slice(0, 40)), 'nor the PKCS#12 file')
  t.equal((await api('PUT', '/remote-services/vip', vipService())).statusCode, 200)
  t.equal((await eventsOf('remote-service-vip')).length, 1, 'the same configuration again writes nothing')

  const tested = await api('POST', '/remote-services/vip/test')
  t.match(tested.json(), { ok: true, message: /Connected: the VIP service answered \(ReasonCode 4E03/ })
})

t.test('Test connection says what went wrong: our certificate refused, their certificate not trusted, a wrong URL, a timeout', async (t) => {
  const cases: [object, RegExp][] = [
    [{ pkcs12: vip.strangerPfx.toString('base64') }, /refused our client certificate/],
    [{ caPem: vip.otherCaPem.toString() }, /don't trust the VIP service's certificate/],
    [{ url: vip.url.replace('/val/soap', '/nowhere') }, /404/],
  ]
  for (const [extra, message] of cases) {
    t.equal((await api('PUT', '/remote-services/vip-test', vipService(extra))).statusCode, 200)
    const res = await api('POST', '/remote-services/vip-test/test')
    t.equal(res.json().ok, false)
    t.match(res.json().message, message)
  }
  t.equal((await api('PUT', '/remote-services/vip-test', vipService({ timeoutSeconds: 1 }))).statusCode, 200)
  vip.setDelay(1500)
  const slow = await api('POST', '/remote-services/vip-test/test')
  vip.setDelay(0)
  t.match(slow.json(), { ok: false, message: /did not answer within 1 s/ })
  t.equal((await api('DELETE', '/remote-services/vip-test')).statusCode, 200)
  t.equal((await sql`select 1 from remote_service_secrets where id = 'vip-test'`.execute(database.db)).rows.length, 0, 'its secrets went with it')
  t.equal((await api('POST', '/remote-services/vip-test/test')).statusCode, 404)
})

t.test('an admin gives a user a VIP credential; she signs in with its code, accepted once', async (t) => {
  const vera = await addUser(app, 'vera@example.com')
  const given = await api('POST', '/users/vera@example.com/remote-credential', { service: 'vip', credential: 'VSMT12345678' })
  t.equal(given.statusCode, 201, given.body)
  const serial = given.json().serial
  t.match(serial, /^REMOTE-[0-9A-F]{12}$/)
  t.same((await eventsOf(`token-${serial}`)).map((e) => e.type), ['RemoteCredentialAssigned'])
  t.match((await eventsOf(`user-${vera.userId}`)).at(-1), { type: 'SignInMethodAdded', data: { serial, by: 'admin' } })
  await addUser(app, 'walt@example.com')
  const twice = await api('POST', '/users/walt@example.com/remote-credential', { service: 'vip', credential: 'VSMT12345678' })
  t.equal(twice.statusCode, 409, 'one holder per credential')
  t.match(twice.json().message, /already given to a user/)
  t.equal((await api('POST', '/users/walt@example.com/remote-credential', { service: 'nope', credential: 'VSMT12345678' })).statusCode, 404)
  t.equal((await api('POST', '/users/walt@example.com/remote-credential', { service: 'vip', credential: 'VS M T' })).statusCode, 400, 'a credential id of the wrong shape is bad input')
  t.equal((await api('POST', '/users/walt@example.com/remote-credential', { service: 'v\u0000p', credential: 'VSMT12345678' })).statusCode, 400, 'a NUL in the service is bad input')
  t.equal((await api('POST', '/users/walt@example.com/remote-credential', { service: 'vip', credential: ['VSMT1'] })).statusCode, 400)

  const b = await atVerify('vera@example.com')
  const asked = vip.received.length
  const code = vipCode()
  const ok = await b.post('/security-info/verify', { code })
  t.equal(ok.status, 303, text(ok.body))
  t.same(vip.received.slice(asked), [{ tokenId: 'VSMT12345678', otp: code }], 'the service was asked, with the code typed')
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpVerified', data: { serial, remote: '0000' } })
  t.notOk(JSON.stringify(await eventsOf(`token-${serial}`)).includes(code), 'the code is in no event')

  // The same code again: the VIP service would accept it (its window), we do not, and we do not ask it.
  const again = await atVerify('vera@example.com')
  const replay = await again.post('/security-info/verify', { code })
  t.equal(replay.status, 422)
  t.match(text(replay.body), /That code didn't work/)
  t.equal(vip.received.length, asked + 1, 'the service was not asked again')
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'replayed', remote: 'replayed' } })
})

t.test('wrong codes count and lock the credential; locked, even a right code is refused without asking the service', async (t) => {
  const wes = await addUser(app, 'wes@example.com')
  const serial = (await api('POST', '/users/wes@example.com/remote-credential', { service: 'vip', credential: 'VSMT00000003' })).json().serial
  const b = await atVerify('wes@example.com')
  const wrong = vipCode() === '000000' ? '000001' : '000000'
  for (let i = 1; i <= 3; i++) {
    const res = await b.post('/security-info/verify', { code: wrong })
    t.equal(res.status, 422)
  }
  const events = await eventsOf(`token-${serial}`)
  t.match(events.filter((e) => e.type === 'OtpRejected').map((e) => e.data), [{ reason: 'wrong', failures: 1, remote: '49B5' }, { reason: 'wrong', failures: 2, remote: '49B5' }, { reason: 'wrong', failures: 3, remote: '49B5' }])
  t.equal(events.at(-1)!.type, 'TokenLocked')
  const asked = vip.received.length
  const locked = await b.post('/security-info/verify', { code: vipCode() })
  t.equal(locked.status, 422)
  t.match(text(locked.body), /locked after too many wrong codes/)
  t.equal(vip.received.length, asked, 'a locked credential does not reach the service')
  void wes
})

t.test('a credential the service disabled is refused with its reason code', async (t) => {
  await addUser(app, 'xena@example.com')
  const serial = (await api('POST', '/users/xena@example.com/remote-credential', { service: 'vip', credential: 'VSMT00000002' })).json().serial
  const b = await atVerify('xena@example.com')
  t.equal((await b.post('/security-info/verify', { code: '111111' })).status, 422)
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'wrong', remote: '4993' } })
})

t.test('two requests with the same code at once: one wins, the service is asked once', async (t) => {
  const yuri = await addUser(app, 'yuri@example.com')
  const serial = (await api('POST', '/users/yuri@example.com/remote-credential', { service: 'vip', credential: 'VSMT00000004' })).json().serial
  const browsers = await Promise.all([atVerify('yuri@example.com'), atVerify('yuri@example.com'), atVerify('yuri@example.com')])
  const asked = vip.received.length
  const code = vipCode()
  const results = await Promise.all(browsers.map((b) => b.post('/security-info/verify', { code })))
  t.same(results.map((r) => r.status).sort(), [303, 422, 422])
  t.equal(vip.received.length - asked, 1, 'the code reached the service once')
  t.equal((await eventsOf(`token-${serial}`)).filter((e) => e.type === 'OtpVerified').length, 1)
  void yuri
})

t.test('a service that does not answer fails closed, does not count, and is paused after repeated failures', async (t) => {
  t.equal((await api('PUT', '/remote-services/vip', vipService({ timeoutSeconds: 1 }))).statusCode, 200)
  const zack = await addUser(app, 'zack@example.com')
  t.equal((await api('POST', '/users/zack@example.com/remote-credential', { service: 'vip', credential: 'VSMT99999999' })).statusCode, 201)
  const [token] = (await sql<{ serial: string }>`select serial from tokens where user_id = ${zack.userId}`.execute(database.db)).rows
  const b = await atVerify('zack@example.com')
  vip.setDelay(1500)
  t.teardown(() => vip.setDelay(0))
  // The change above reached this process's client at once (another process re-reads it within 5 s).
  for (let i = 0; i < 5; i++) {
    const started = Date.now()
    const res = await b.post('/security-info/verify', { code: String(100000 + i) })
    t.equal(res.status, 422)
    t.match(text(res.body), /We couldn't check your code right now\. Try again, or choose another way to verify\./)
    t.ok(Date.now() - started < 3000, 'no hang past the timeout')
  }
  const rejected = (await eventsOf(`token-${token!.serial}`)).filter((e) => e.type === 'OtpRejected')
  t.match(rejected.map((e) => e.data), Array(5).fill({ reason: 'unavailable', failures: 0, remote: 'timeout' }), 'not counted against the user')
  const asked = vip.received.length
  const paused = await b.post('/security-info/verify', { code: '123456' })
  t.match(text(paused.body), /isn't answering, so we stopped asking it for \d+ seconds/)
  t.equal(vip.received.length, asked, 'a paused service is not asked')
  t.match((await eventsOf(`token-${token!.serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'unavailable', remote: 'paused' } })
  t.equal((await eventsOf(`token-${token!.serial}`)).some((e) => e.type === 'TokenLocked'), false)
})

t.test('RADIUS: a service of two servers, the first down; a code is accepted once though FreeRADIUS would take it again', async (t) => {
  const bad = await api('PUT', '/remote-services/old-otp', { name: 'Old OTP server', protocol: 'radius', servers: ['127.0.0.1:1'], secret: 'x' })
  t.equal(bad.statusCode, 200)
  const wrongSecret = await api('POST', '/remote-services/old-otp/test')
  t.equal(wrongSecret.json().ok, false)
  t.equal((await api('PUT', '/remote-services/old-otp', { name: 'Old OTP server', protocol: 'radius', servers: [`127.0.0.1:${radius.port}`], secret: 'not-the-secret', timeoutSeconds: 3 })).statusCode, 200)
  t.match((await api('POST', '/remote-services/old-otp/test')).json(), { ok: false, message: /shared secret/ }, 'a wrong shared secret, said as such')
  t.equal((await api('PUT', '/remote-services/old-otp', { name: 'Old OTP server', protocol: 'radius', servers: ['127.0.0.1:9', `127.0.0.1:${radius.port}`],
    secret: radius.secret, timeoutSeconds: 4, retries: 0 })).statusCode, 200)
  t.match((await api('POST', '/remote-services/old-otp/test')).json(), { ok: true, message: /Access-Reject/ })
  t.equal((await api('PUT', '/remote-services/old-otp', { name: 'Old OTP server', protocol: 'radius', servers: ['nope nope'] })).statusCode, 400)

  const carol = await addUser(app, 'carol@example.com')
  const serial = (await api('POST', '/users/carol@example.com/remote-credential', { service: 'old-otp', credential: 'carol' })).json().serial
  const b = await atVerify('carol@example.com')
  t.equal((await b.post('/security-info/verify', { code: '000000' })).status, 422, 'a wrong code')
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'wrong', remote: 'Access-Reject' } })
  t.equal((await b.post('/security-info/verify', { code: '482915' })).status, 303, 'the right one, from the second server')
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpVerified', data: { remote: 'Access-Accept' } })
  const again = await atVerify('carol@example.com')
  t.equal((await again.post('/security-info/verify', { code: '482915' })).status, 422, 'the same code again is refused')
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'replayed' } })
  void carol
})

t.test('a service in use is not removed; revoked credentials free it', async (t) => {
  const inUse = await api('DELETE', '/remote-services/old-otp')
  t.equal(inUse.statusCode, 409)
  t.match(inUse.json().message, /1 credential uses this service: revoke it first/)
  const [token] = (await sql<{ serial: string }>`select serial from tokens where remote_service = 'old-otp'`.execute(database.db)).rows
  t.equal((await api('POST', `/tokens/${token!.serial}/revoke`, { reason: 'retired' })).statusCode, 200)
  t.equal((await api('DELETE', '/remote-services/old-otp')).statusCode, 200)
  t.same((await eventsOf('remote-service-old-otp')).map((e) => e.type).at(-1), 'RemoteServiceRemoved')
})

t.test('the admin pages list the services, test a connection and give a credential', async (t) => {
  const b = await signedInAdmin(app, clock)
  const list = await b.get('/admin/remote-services')
  t.equal(list.status, 200)
  t.match(text(list.body), /Symantec VIP vip · VIP/)
  const tested = await b.post('/admin/remote-services/vip/test', {})
  t.match(text(tested.body), /Test connection: vip Connected: the VIP service answered/)
  await addUser(app, 'uma@example.com')
  const user = await b.get('/admin/users/uma@example.com')
  t.match(text(user.body), /Remote credential .* Credential id/)
  const refused = await b.post('/admin/users/uma@example.com/remote-credential', { service: 'vip', credential: 'VSMT12345678' })
  t.equal(refused.status, 409)
  t.match(text(refused.body), /already given to a user/)
  t.notMatch(refused.body, /id="(email|mobile)-error"/, 'the refusal is not put next to unrelated fields')
  const badMobile = await b.post('/admin/users/uma@example.com/contact', { email: '', mobile: '12345' })
  t.equal(badMobile.status, 422)
  t.match(badMobile.body, /id="mobile-error"[^>]*>That doesn(&#39;|')t look like a phone number/, 'a contact refusal sits next to its own field')
  t.notMatch(badMobile.body, /id="email-error"/)
  const given = await b.post('/admin/users/uma@example.com/remote-credential', { service: 'vip', credential: 'VSMT55555555' })
  t.equal(given.status, 303)
  t.match(text((await b.follow(given)).body), /The remote credential was given to the user/)

  // A RADIUS service from the page's multipart form, its CSRF token checked.
  const form = (fields: Record<string, string>) => {
    const boundary = 'tessera-test-boundary'
    const body = Object.entries(fields).map(([k, v]) => `--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join('') + `--${boundary}--\r\n`
    return app.inject({ method: 'POST', url: '/admin/remote-services', payload: body, headers: { cookie: b.cookieHeader(), accept: 'text/html', 'content-type': `multipart/form-data; boundary=${boundary}` } })
  }
  const csrf = /name="_csrf" value="([^"]+)"/.exec((await b.get('/admin/remote-services')).body)![1]!
  const before = await countEvents()
  t.equal((await form({ _csrf: 'forged', protocol: 'radius', id: 'page-radius', name: 'From the page', servers: `127.0.0.1:${radius.port}`, secret: radius.secret })).statusCode, 403)
  const noSecret = await form({ _csrf: csrf, protocol: 'radius', id: 'page-radius', name: 'From the page', servers: `127.0.0.1:${radius.port}` })
  t.equal(noSecret.statusCode, 400)
  t.match(text(noSecret.body), /Give the RADIUS shared secret/)
  t.equal(await countEvents(), before, 'refused forms wrote nothing')
  const saved = await form({ _csrf: csrf, protocol: 'radius', id: 'page-radius', name: 'From the page', servers: `127.0.0.1:${radius.port}`, secret: radius.secret })
  t.equal(saved.statusCode, 303, text(saved.body))
  t.match(text((await b.get('/admin/remote-services')).body), /From the page page-radius · RADIUS/)
})

t.test('the CLI adds a RADIUS service (secret on standard input), tests it and gives a credential', async (t) => {
  const env = { DATABASE_URL: database.url, TESSERA_MASTER_KEY: MASTER }
  const added = await tessera(['remote-services', 'add-radius', 'cli-radius', '--name', 'CLI RADIUS', '--server', `127.0.0.1:${radius.port}`, '--secret-stdin'], env, `${radius.secret}\n`)
  t.equal(added.code, 0, added.stderr)
  t.match(added.stdout, /remote service cli-radius saved \(radius/)
  const tested = await tessera(['remote-services', 'test', 'cli-radius'], env)
  t.equal(tested.code, 0, tested.stderr)
  t.match(tested.stdout, /Connected: the RADIUS server answered \(Access-Reject\)/)
  const missing = await tessera(['remote-services', 'add-radius', 'cli-radius', '--name', 'CLI RADIUS'], env)
  t.equal(missing.code, 2)
  t.match(missing.stderr, /give the servers in failover order/)
  await addUser(app, 'dave@example.com')
  const given = await tessera(['tokens', 'assign-remote', 'dave@example.com', '--service', 'cli-radius', '--credential', 'dave'], env)
  t.equal(given.code, 0, given.stderr)
  t.match(given.stdout, /dave@example\.com can sign in with remote credential REMOTE-/)
  const b = await atVerify('dave@example.com')
  t.equal((await b.post('/security-info/verify', { code: '604213' })).status, 303)
  const listed = await tessera(['remote-services', 'list'], env)
  t.match(listed.stdout, /cli-radius\tradius\tCLI RADIUS\t127\.0\.0\.1:\d+\t1 credentials/)
})

t.test('a user with a hardware token and remote credentials: the service down changes nothing for the token', async (t) => {
  // Two VIP services: one that stops answering, one that answers.
  t.equal((await api('PUT', '/remote-services/vip-down', vipService({ timeoutSeconds: 1 }))).statusCode, 200)
  const ned = await addUser(app, 'ned@example.com')
  const unix = () => Math.floor(Date.now() / 1000)
  await importEntra(app, [`ned@example.com,NED-1,${seedOf('NED-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'NED-1', userId: ned.userId, name: 'Fob', code: totpAt(seedOf('NED-1').hex, unix() - 30) }, metadata())
  const down = (await api('POST', '/users/ned@example.com/remote-credential', { service: 'vip-down', credential: 'VSMT77770001' })).json().serial
  const up = (await api('POST', '/users/ned@example.com/remote-credential', { service: 'vip', credential: 'VSMT77770002' })).json().serial
  t.ok(down && up)
  vip.setDelay(1200)
  t.teardown(() => vip.setDelay(0))
  // Wrong codes while a service is down still count on the hardware token, and lock it at the threshold.
  const b = await atVerify('ned@example.com')
  for (let i = 0; i < 3; i++) {
    const res = await b.post('/security-info/verify', { code: String(200000 + i) })
    t.equal(res.status, 422)
  }
  const fob = await eventsOf('token-NED-1')
  t.match(fob.filter((e) => e.type === 'OtpRejected').map((e) => e.data), [{ reason: 'wrong', failures: 1 }, { reason: 'wrong', failures: 2 }, { reason: 'wrong', failures: 3 }])
  t.equal(fob.at(-1)!.type, 'TokenLocked', 'the token locked though a service could not answer')
  // The locked token's right code is its own: not sent to any remote service.
  const asked = vip.received.length
  const fobCode = totpAt(seedOf('NED-1').hex, unix())
  t.equal((await b.post('/security-info/verify', { code: fobCode })).status, 422)
  t.notOk(vip.received.slice(asked).some((r) => r.otp === fobCode), "a code of the user's own token never reaches a remote service")
})

t.test('a remote credential revoked and given to someone else does not take a code it took before', async (t) => {
  vip.setDelay(0)
  // Saved again: a new configuration starts with a closed breaker (the tests above made it open).
  t.equal((await api('PUT', '/remote-services/vip', vipService({ timeoutSeconds: 3 }))).statusCode, 200)
  await addUser(app, 'olga@example.com')
  await addUser(app, 'pete@example.com')
  const first = (await api('POST', '/users/olga@example.com/remote-credential', { service: 'vip', credential: 'VSMT88880001' })).json().serial
  const code = '314159'
  vipCredentials.VSMT88880001 = { code }
  t.equal((await (await atVerify('olga@example.com')).post('/security-info/verify', { code })).status, 303)
  t.equal((await api('POST', `/tokens/${first}/revoke`, { reason: 'retired' })).statusCode, 200)
  t.same((await eventsOf(`token-${first}`)).map((e) => e.type).slice(-1), ['TokenRevoked'], 'no seed to destroy: no TokenSecretDestroyed')
  t.equal((await api('POST', '/users/pete@example.com/remote-credential', { service: 'vip', credential: 'VSMT88880001' })).statusCode, 201)
  const asked = vip.received.length
  t.equal((await (await atVerify('pete@example.com')).post('/security-info/verify', { code })).status, 422, 'the same code, replayed')
  t.equal(vip.received.length, asked, 'and not sent again')
})

t.test('an edit that leaves the CA out keeps it; null clears it', async (t) => {
  t.equal((await api('PUT', '/remote-services/vip-ca', vipService())).statusCode, 200)
  const renamed = await api('PUT', '/remote-services/vip-ca', { name: 'Renamed', protocol: 'vip', url: vip.url })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.equal(renamed.json().settings.caPem, vip.caPem.toString().trim() + '\n', 'the CA is kept')
  t.match((await api('POST', '/remote-services/vip-ca/test')).json(), { ok: true })
  const cleared = await api('PUT', '/remote-services/vip-ca', { name: 'Renamed', protocol: 'vip', url: vip.url, caPem: null })
  t.equal(cleared.json().settings.caPem, null)
  t.match((await api('POST', '/remote-services/vip-ca/test')).json(), { ok: false, message: /don't trust/ })
  t.equal((await api('DELETE', '/remote-services/vip-ca')).statusCode, 200)
})

t.test('RADIUS servers that wait a second before a refusal: a wrong code is a refusal, not "no answer"', async (t) => {
  const slow = await startFreeRadius(t, { users: { quinn: '271828' }, secret: 'slow-secret', rejectDelay: 1 })
  const thin = await api('PUT', '/remote-services/slow', { name: 'Slow', protocol: 'radius', servers: [`127.0.0.1:${slow.port}`, '127.0.0.1:9'], secret: slow.secret, timeoutSeconds: 2, retries: 1 })
  t.equal(thin.statusCode, 400, 'a budget that cannot outlast a refusal is refused')
  t.match(thin.json().message, /leaves each attempt 0\.50 s; RADIUS servers wait about 1 s before a refusal\. Give a timeout of at least 5 s/)
  t.equal((await api('PUT', '/remote-services/slow', { name: 'Slow', protocol: 'radius', servers: [`127.0.0.1:${slow.port}`], secret: slow.secret })).statusCode, 200)
  await addUser(app, 'quinn@example.com')
  const serial = (await api('POST', '/users/quinn@example.com/remote-credential', { service: 'slow', credential: 'quinn' })).json().serial
  const b = await atVerify('quinn@example.com')
  t.equal((await b.post('/security-info/verify', { code: '000000' })).status, 422)
  t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'OtpRejected', data: { reason: 'wrong', failures: 1, remote: 'Access-Reject' } })
  t.equal((await b.post('/security-info/verify', { code: '271828' })).status, 303)
})

t.test('every hash chain still verifies', async (t) => {
  const report = await verifyChains(database.db)
  t.same(report.breaks, [])
})
