// A password alone must never be enough: every change to a user's sign-in methods needs a second factor,
// a user who lost every method needs an admin, a removed token is held for its user, and each change is an
// event the user is told about at their next sign-in. Over HTTP with real pages, sessions and CSRF.
import t from 'tap'
import { sql } from 'kysely'
import { issueTemporaryCode } from '../../src/commands/temporary-codes.js'
import { setPolicy } from '../../src/commands/policies.js'
import { createApiKey } from '../../src/commands/api-keys.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'
import { assertRebuildEqual } from '../helpers/rebuild.js'

const { app, database, clock } = await testApp(t)
// This file's users try many codes within a minute of real time: the per-user activation rate is not what it tests.
const SETTINGS = { ...DEFAULT_SETTINGS, activationAttemptsPerMinute: 100 }
await setPolicy(app.commands, 'default', { name: 'Default', priority: 0, settings: SETTINGS }, metadata({ actor: { type: 'admin', id: 'root' } }))
let now = Math.floor(Date.UTC(2026, 10, 23, 9, 0, 15) / 1000)
clock.now = new Date(now * 1000)
/** Moves the clock to the next time step, so each code is a fresh one. */
function nextStep() {
  now += 30
  clock.now = new Date(now * 1000)
}
const code = (serial: string) => totpAt(seedOf(serial).hex, now)

const alice = await addUser(app, 'alice@example.com')
const mallory = await addUser(app, 'mallory@example.com')
const carol = await addUser(app, 'carol@example.com')
const dave = await addUser(app, 'dave@example.com')
const SERIALS = ['100001', '100002', '100003', '100004', '100005', '100006', '100007']
const report = await importEntra(app, SERIALS.map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
t.same(report.rejected, [], 'the inventory imported')

async function count(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
}
async function tokenRow(serial: string) {
  return (await sql<{ status: string; user_id: string | null; held_for: string | null }>`select status, user_id, held_for from tokens where serial = ${serial}`.execute(database.db)).rows[0]!
}
async function userEvents(userId: string) {
  return (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`user-${userId}`} order by stream_version`.execute(database.db)).rows
}

/** Add sign-in method > Hardware token: serial, name, code. Returns the last answer. */
async function enroll(b: Browser, serial: string, name = 'Key fob') {
  const s = await b.post('/security-info/hardware-token/serial', { serial })
  if (s.status !== 303 || s.location !== '/security-info/hardware-token/name') return s
  await b.get('/security-info/hardware-token/name')
  await b.post('/security-info/hardware-token/name', { name })
  await b.get('/security-info/hardware-token/code')
  return b.post('/security-info/hardware-token/code', { code: code(serial) })
}

async function signedIn(upn: string) {
  const b = new Browser(app)
  await b.signIn(upn)
  await b.get('/security-info')
  return b
}

t.test('a user who never had a method adds the first after her password alone', async (t) => {
  const first = await signedIn('alice@example.com')
  await first.get('/security-info/hardware-token/serial')
  t.equal((await enroll(first, '100001')).status, 303, "alice's first token is added after her password")
  nextStep()
})

t.test('with only the password, nothing about the methods changes and nothing is written', async (t) => {
  const attacker = await signedIn('alice@example.com')
  const before = await count()
  for (const url of ['/security-info/methods/100001/remove', '/security-info/methods/100001/rename', '/security-info/add', '/security-info/hardware-token/serial']) {
    const page = await attacker.get(url)
    t.equal(page.status, 303, `GET ${url} is not shown`)
    t.equal(page.location, '/security-info/verify', `GET ${url} asks for a code first`)
  }
  const remove = await attacker.post('/security-info/methods/100001/remove', {})
  t.equal(remove.location, '/security-info/verify', 'Delete asks for a code')
  const rename = await attacker.post('/security-info/methods/100001/rename', { name: 'Mine now' })
  t.equal(rename.location, '/security-info/verify', 'Rename asks for a code')
  const add = await attacker.post('/security-info/hardware-token/serial', { serial: '100002' })
  t.equal(add.location, '/security-info/verify', 'Add asks for a code')
  t.equal(await count(), before, 'no event is written by a refused step')
  t.match(await tokenRow('100001'), { status: 'active', user_id: alice.userId }, "the victim's token is still active")
  t.equal((await tokenRow('100002')).status, 'inventory')
  const verify = await attacker.get('/security-info/verify')
  t.match(text(verify.body), /Before you add a sign-in method, enter the code displayed on one of the tokens you already have/, 'the last change tried is the one named')
})

t.test('with a code, the user renames and deletes; the last one with a warning; the token is then held for her', async (t) => {
  const b = await signedIn('alice@example.com')
  await b.get('/security-info/methods/100001/rename')
  const verified = await b.post('/security-info/verify', { serial: '100001', code: code('100001') })
  t.equal(verified.location, '/security-info/methods/100001/rename', 'back to the change she started')
  nextStep()
  await b.get(verified.location!)
  t.equal((await b.post('/security-info/methods/100001/rename', { name: 'Blue fob' })).location, '/security-info?notice=renamed')
  const confirm = await b.get('/security-info/methods/100001/remove')
  t.match(text(confirm.body), /This is your last sign-in method/)
  t.match(text(confirm.body), /your administrator will have to give you a temporary code or assign you a token/)
  t.match(confirm.body, /<button type="submit" class="danger">Delete my last method<\/button>/)
  t.equal((await b.post('/security-info/methods/100001/remove', {})).location, '/security-info?notice=removed')
  t.match(await tokenRow('100001'), { status: 'inventory', user_id: null, held_for: alice.userId }, 'held for alice, not claimable')
  await b.get('/security-info/hardware-token/serial')
  t.equal((await b.post('/security-info/hardware-token/serial', { serial: '100002' })).status, 422,
    'the code that deleted her last method does not let her claim another: that needs an admin now')
  const events = await userEvents(alice.userId)
  t.same(events.filter((e) => e.type.startsWith('SignInMethod')).map((e) => [e.type, e.data.serial, e.data.by]),
    [['SignInMethodAdded', '100001', 'self'], ['SignInMethodRemoved', '100001', 'self']], 'each change is an event on her account')
  t.match(events.find((e) => e.type === 'SignInMethodRemoved')!.metadata, { sourceIp: '127.0.0.1', actor: { type: 'user', id: alice.userId } }, 'with its source')
})

t.test('an account that lost its methods cannot add one with the password alone', async (t) => {
  const attacker = await signedIn('alice@example.com')
  const add = await attacker.get('/security-info/add')
  t.equal(add.status, 200)
  t.match(text(add.body), /your password alone can't add one/)
  const before = await count()
  await attacker.get('/security-info/hardware-token/serial')
  const claim = await attacker.post('/security-info/hardware-token/serial', { serial: '100002' })
  t.equal(claim.status, 422, 'an inventory token is refused')
  t.match(text(claim.body), /We couldn't find that serial number, or it can't be added to your account/, 'with the one message for every refused serial')
  const held = await attacker.post('/security-info/hardware-token/serial', { serial: '100001' })
  t.equal(held.status, 422, 'her own removed token too: that needs a second factor')
  const code = await attacker.post('/security-info/hardware-token/code', { code: '123456' })
  t.equal(code.location, '/security-info/hardware-token/serial', 'no step can be skipped to')
  t.equal(await count(), before, 'nothing written')
  const verify = await attacker.get('/security-info/verify')
  t.match(text(verify.body), /Your account has no sign-in method\. Before you add a sign-in method, enter the temporary code your administrator gave you/)
  const guess = await attacker.post('/security-info/verify', { code: '123456' })
  t.match(text(guess.body), /Enter the temporary code your administrator gave you \(12 digits\)/)
})

t.test('a removed token is claimable by nobody else until an admin releases it', async (t) => {
  const m = await signedIn('mallory@example.com')
  await m.get('/security-info/hardware-token/serial')
  const held = await m.post('/security-info/hardware-token/serial', { serial: '100001' })
  t.equal(held.status, 422)
  t.match(text(held.body), /We couldn't find that serial number, or it can't be added to your account/)
  const refused = await app.inject({ method: 'POST', url: '/admin/api/tokens/100001/release', headers: { authorization: 'Bearer nope' } })
  t.equal(refused.statusCode, 401, 'releasing is for admins')
})

t.test('an admin releases a removed token, and then anyone holding it may claim it', async (t) => {
  const key = (await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())).key
  const api = (url: string) => app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` } })
  const notHeld = await api('/admin/api/tokens/100002/release')
  t.equal(notHeld.statusCode, 409, 'only a held token is released')
  t.match(notHeld.json().message, /not waiting to be released/)
  const released = await api('/admin/api/tokens/100001/release')
  t.equal(released.statusCode, 200)
  t.match(await tokenRow('100001'), { status: 'inventory', held_for: null })
  const m = await signedIn('mallory@example.com')
  await m.get('/security-info/hardware-token/serial')
  t.equal((await m.post('/security-info/hardware-token/serial', { serial: '100001' })).location, '/security-info/hardware-token/name', 'claimable again')
})

t.test('an admin assignment lets the user add that token, and only that one, without a temporary code', async (t) => {
  const { assignToken } = await import('../../src/commands/tokens.js')
  await assignToken(app.commands, { serial: '100003', userId: alice.userId }, metadata({ actor: { type: 'admin', id: 'helpdesk' } }))
  const b = await signedIn('alice@example.com')
  await b.get('/security-info/hardware-token/serial')
  t.equal((await b.post('/security-info/hardware-token/serial', { serial: '100002' })).status, 422, 'not an inventory token')
  const done = await enroll(b, '100003', 'Assigned fob')
  t.match(done.location, /^\/security-info\/hardware-token\/done/, 'the assigned token is activated')
  t.equal((await tokenRow('100003')).status, 'active')
  nextStep()
})

t.test('a temporary code from an admin lets a user who lost every method add one', async (t) => {
  const { code: temporary } = await issueTemporaryCode(app.commands, { userId: carol.userId, validDays: 1, oneTime: true }, metadata({ actor: { type: 'admin', id: 'helpdesk' } }))
  // Carol had a method once: one added and removed.
  const b = await signedIn('carol@example.com')
  await b.get('/security-info/hardware-token/serial')
  t.equal((await enroll(b, '100004')).status, 303)
  nextStep()
  await b.get('/security-info/methods/100004/remove')
  await b.post('/security-info/verify', { serial: '100004', code: code('100004') })
  nextStep()
  await b.get('/security-info/methods/100004/remove')
  await b.post('/security-info/methods/100004/remove', {})
  const later = await signedIn('carol@example.com')
  await later.get('/security-info/verify')
  t.equal((await later.post('/security-info/verify', { code: temporary })).location, '/security-info/add')
  await later.get('/security-info/hardware-token/serial')
  t.equal((await enroll(later, '100004', 'Again')).status, 303, 'with it she adds her held token again')
  t.match(await tokenRow('100004'), { status: 'active', user_id: carol.userId, held_for: null })
  nextStep()
})

t.test('the policy can refuse a first method on the password alone', async (t) => {
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 0, settings: { ...SETTINGS, firstMethodWithPassword: false } }, metadata({ actor: { type: 'admin', id: 'root' } }))
  t.teardown(() => setPolicy(app.commands, 'default', { name: 'Default', priority: 0, settings: SETTINGS }, metadata({ actor: { type: 'admin', id: 'root' } })))
  const b = await signedIn('dave@example.com')
  await b.get('/security-info/hardware-token/serial')
  const refused = await b.post('/security-info/hardware-token/serial', { serial: '100005' })
  t.equal(refused.status, 422, 'dave never had a method, and still needs an admin')
  t.equal((await tokenRow('100005')).status, 'inventory')
})

t.test('a user with a role never adds a first method on the password alone', async (t) => {
  const { grantRole } = await import('../../src/commands/users.js')
  const erin = await addUser(app, 'erin@example.com')
  await grantRole(app.commands, 'erin@example.com', 'admin', metadata())
  const b = await signedIn('erin@example.com')
  await b.get('/security-info/hardware-token/serial')
  const refused = await b.post('/security-info/hardware-token/serial', { serial: '100007' })
  t.equal(refused.status, 422, "an admin's first token would open the admin pages: it needs a temporary code or an assignment")
  t.equal((await tokenRow('100007')).status, 'inventory')
  t.ok(erin.userId)
})

t.test('wrong activation codes count per user: a stranger cannot use up the holder\'s attempts', async (t) => {
  const m = await signedIn('mallory@example.com')
  await m.get('/security-info/hardware-token/serial')
  await m.post('/security-info/hardware-token/serial', { serial: '100006' })
  await m.get('/security-info/hardware-token/name')
  await m.post('/security-info/hardware-token/name', { name: 'Not mine' })
  await m.get('/security-info/hardware-token/code')
  const answers: number[] = []
  let last = ''
  for (let i = 0; i < 6; i++) {
    const page = await m.post('/security-info/hardware-token/code', { code: String(111111 + i) })
    answers.push(page.status)
    last = text(page.body)
  }
  t.same(answers, [422, 422, 422, 422, 422, 422])
  t.match(last, /Too many/i, 'mallory is stopped after five')
  const row = (await sql<{ claim_failures: Record<string, number>; activation_failures: number }>`select claim_failures, activation_failures from tokens where serial = '100006'`.execute(database.db)).rows[0]!
  t.same(row.claim_failures, { [mallory.userId]: 5 })
  // Dave (the policy is back to the default) is the token's real holder: his attempts are his own.
  const d = await signedIn('dave@example.com')
  await d.get('/security-info/hardware-token/serial')
  t.equal((await enroll(d, '100006', 'Dave fob')).status, 303, 'the holder still claims it')
  t.match(await tokenRow('100006'), { status: 'active', user_id: dave.userId })
  nextStep()
})

t.test('the next sign-in says what changed on the account, once, with the address', async (t) => {
  const b = new Browser(app)
  b.ip = '203.0.113.9'
  await b.signIn('alice@example.com')
  // Alice's previous sign-ins are this file's own; since the last one an admin assigned her a token she activated.
  const info = await b.get('/security-info')
  t.match(text(info.body), /Since you last signed in/)
  t.match(text(info.body), /A sign-in method \(serial 100003\) was added to your account on \d+ \w+ \d{4}, \d\d:\d\d UTC from address 127\.0\.0\.1\./)
  const again = await b.get('/security-info')
  t.notMatch(text(again.body), /Since you last signed in/, 'said once')
  const c = await signedIn('carol@example.com')
  const info2 = await c.get('/security-info')
  t.notMatch(text(info2.body), /Since you last signed in/, 'nothing new since carol last signed in')
  // Signing in again does not hide a change: Security info lists the last 30 days' changes.
  const later = await signedIn('alice@example.com')
  const listed = text((await later.get('/security-info')).body)
  t.match(listed, /Recent changes Changes to your sign-in methods in the last 30 days\./)
  t.match(listed, /A sign-in method \(serial 100001\) was removed from your account on/)
})

t.test('form fields of the wrong type are bad input, before any limiter, and change nothing', async (t) => {
  const b = await signedIn('alice@example.com')
  const before = await count()
  const cookie = b.cookieHeader()
  const page = await b.get('/security-info/methods/100003/rename')
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? ''
  for (const payload of [`_csrf=${csrf}&upn=alice@example.com&upn=x&password=y`, `_csrf=${csrf}&upn=a%00b&password=y`]) {
    const res = await app.inject({ method: 'POST', url: '/login', payload, headers: { cookie, accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' } })
    t.equal(res.statusCode, 400)
    t.match(text(res.body), /was not sent as text/)
  }
  const json = await app.inject({ method: 'POST', url: '/login', payload: { _csrf: csrf, upn: ['alice@example.com'], password: 'correct horse battery' }, headers: { cookie, accept: 'application/json' } })
  t.equal(json.statusCode, 400, 'a one-element JSON array is not a name')
  t.match(json.json(), { error: 'MalformedForm', message: /"upn" was not sent as text/ })
  t.equal(await count(), before, 'nothing written')
})

t.test('signed-in pages are not stored by caches', async (t) => {
  const b = await signedIn('alice@example.com')
  const info = await b.get('/security-info')
  t.equal(info.headers['cache-control'], 'no-store')
  const css = await app.inject({ method: 'GET', url: '/assets/tessera.css' })
  t.not(css.headers['cache-control'], 'no-store', 'the stylesheet may be cached')
})

t.test('the read models rebuilt from the log equal the live ones', async (t) => {
  await assertRebuildEqual(t, database.db, app.eventStore, ['tokens', 'users'])
})
