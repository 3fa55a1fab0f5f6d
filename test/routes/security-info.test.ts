// The Entra "Add sign-in method > Hardware token" flow over HTTP, with real pages, sessions and CSRF.
import t from 'tap'
import { sql } from 'kysely'
import { totpAt } from '../helpers/oathtool.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { seedOf } from '../helpers/seeds.js'

// 20-byte seeds: hex for oathtool, Base32 for the Entra file.
const seeds: Record<string, { hex: string; b32: string }> = {}
function seedFor(serial: string) {
  seeds[serial] = seedOf(serial)
  return seeds[serial].b32
}

const { app, database, logs, clock } = await testApp(t)
const NOW = Math.floor(Date.UTC(2026, 10, 22, 10, 0, 15) / 1000)
clock.now = new Date(NOW * 1000)

await addUser(app, 'alice@example.com', 'correct horse battery', 'Alice Example')
await addUser(app, 'bob@example.com', 'correct horse battery', 'Bob Example')
const report = await importEntra(app, [
  `,8659623756140,${seedFor('8659623756140')},30,Token2,C202`,
  `,8659623756141,${seedFor('8659623756141')},30,Token2,C202`,
  `bob@example.com,8659623756142,${seedFor('8659623756142')},30,Token2,C202`,
  `,8659623756160,${seedFor('8659623756160')},60,Token2,C302`,
  `,8659623756143,${seedFor('8659623756143')},30,Token2,C202`,
])
t.same(report.rejected, [], 'the inventory imported')

async function events(serial: string) {
  return (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`token-${serial}`} order by stream_version`.execute(database.db)).rows
}

async function enroll(browser: Browser, serial: string, name: string, code: string) {
  await browser.get('/security-info/hardware-token/serial')
  const s = await browser.post('/security-info/hardware-token/serial', { serial })
  if (s.status !== 303) return s
  await browser.get('/security-info/hardware-token/name')
  await browser.post('/security-info/hardware-token/name', { name })
  await browser.get('/security-info/hardware-token/code')
  return browser.post('/security-info/hardware-token/code', { code })
}

t.test('a signed-out visitor is sent to sign in, and back to the page afterwards', async (t) => {
  const b = new Browser(app)
  const page = await b.get('/security-info')
  t.equal(page.status, 303)
  t.equal(page.location, '/login')
  await b.get('/login')
  const wrong = await b.post('/login', { upn: 'alice@example.com', password: 'nope nope nope' })
  t.equal(wrong.status, 401)
  t.match(text(wrong.body), /Your account or password is incorrect/)
  t.match(wrong.body, /value="alice@example.com"/, 'the name is kept')
  const unknown = await b.post('/login', { upn: 'nobody@example.com', password: 'nope nope nope' })
  t.match(text(unknown.body), /Your account or password is incorrect/, 'the same answer for an unknown user')
  const ok = await b.post('/login', { upn: 'alice@example.com', password: 'correct horse battery' })
  t.equal(ok.status, 303)
  t.equal(ok.location, '/security-info')
})

t.test('alice adds her hardware token by serial, name and first code, and sees it listed', async (t) => {
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  const info = await b.get('/security-info')
  t.match(text(info.body), /Security info/)
  t.match(text(info.body), /\+ Add sign-in method/)
  t.match(text(info.body), /You have no sign-in methods yet/)

  const add = await b.get('/security-info/add')
  t.match(add.body, /<a href="\/security-info\/hardware-token\/serial">Hardware token<\/a>/, 'each method a link')
  t.match(text(add.body), /Hardware token A key fob that shows a code\. You need its serial number, on its back\./, 'with a line that says what it is')
  const chosen = await b.post('/security-info/add', { method: 'hardware-token' })
  t.equal(chosen.location, '/security-info/hardware-token/serial')

  const serialPage = await b.get(chosen.location!)
  t.match(text(serialPage.body), /Please enter the serial number located on the back of the token/)
  t.match(serialPage.body, /<label for="serial">Serial number<\/label>/)
  const serial = await b.post('/security-info/hardware-token/serial', { serial: '8659623756140' })
  t.equal(serial.location, '/security-info/hardware-token/name')

  const namePage = await b.get(serial.location!)
  t.match(namePage.body, /value="Token2 C202"/, 'the name is suggested from the inventory')
  const named = await b.post('/security-info/hardware-token/name', { name: 'My key fob' })
  t.equal(named.location, '/security-info/hardware-token/code')

  const codePage = await b.get(named.location!)
  t.match(text(codePage.body), /enter the 6-digit verification code/)
  const code = totpAt(seeds['8659623756140']!.hex, NOW)
  const done = await b.post('/security-info/hardware-token/code', { code })
  t.equal(done.status, 303)
  const donePage = await b.follow(done)
  t.match(text(donePage.body), /Your hardware token has been added/)
  t.match(donePage.body, /href="\/security-info">Done</)

  const listed = await b.get('/security-info')
  t.match(text(listed.body), /Hardware token My key fob \(serial 8659623756140\)/)

  t.same((await events('8659623756140')).map((e) => e.type), ['TokenImported', 'TokenAssigned', 'TokenRenamed', 'TokenActivated'])
  const [, assigned, renamed, activated] = await events('8659623756140')
  t.match(assigned!.data, { by: 'self' })
  t.equal(renamed!.data.name, 'My key fob')
  t.equal(activated!.data.step, Math.floor(NOW / 30))
  t.match(activated!.metadata, { actor: { type: 'user' }, sourceIp: '127.0.0.1' })
  t.ok(activated!.metadata.requestId, 'the request id is recorded')
})

t.test('no seed appears in any event or log line', async (t) => {
  const all = (await sql<{ t: string }>`select data::text || metadata::text as t from events`.execute(database.db)).rows.map((r) => r.t).join('\n')
  const logText = logs.join('\n')
  for (const { hex, b32 } of Object.values(seeds)) {
    for (const needle of [hex, b32, b32.toLowerCase(), Buffer.from(hex, 'hex').toString('base64')]) {
      t.notOk(all.includes(needle), 'not in the events')
      t.notOk(logText.includes(needle), 'not in the logs')
    }
  }
  const imported = (await events('8659623756140'))[0]!
  t.match(imported.data.seedFingerprint, /^[0-9a-f]{32}$/, 'the event carries a fingerprint instead')
})

t.test("an unknown serial and someone else's serial get the same message, and the input is kept", async (t) => {
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  clock.now = new Date((NOW + 30) * 1000)
  await b.get('/security-info/verify')
  t.equal((await b.post('/security-info/verify', { serial: '8659623756140', code: totpAt(seeds['8659623756140']!.hex, NOW + 30) })).status, 303)
  await b.get('/security-info/hardware-token/serial')
  const unknown = await b.post('/security-info/hardware-token/serial', { serial: '0000000000' })
  const foreign = await b.post('/security-info/hardware-token/serial', { serial: '8659623756142' })
  t.equal(unknown.status, 422)
  t.equal(foreign.status, 422)
  const message = "We couldn't find that serial number, or it can't be added to your account."
  t.match(text(unknown.body), message)
  t.match(text(foreign.body), message)
  t.match(foreign.body, /value="8659623756142"/, 'the serial stays in the field')
  t.match(foreign.body, /aria-invalid="true"/)
  const mine = await b.post('/security-info/hardware-token/serial', { serial: '8659623756140' })
  t.match(text(mine.body), /already activated on your account/)
})

t.test('adding a second method needs a code from the first', async (t) => {
  clock.now = new Date((NOW + 60) * 1000)
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  const blocked = await b.get('/security-info/hardware-token/serial')
  t.equal(blocked.location, '/security-info/verify')
  const verify = await b.get('/security-info/verify')
  t.match(text(verify.body), /Verify your identity/)
  const wrong = await b.post('/security-info/verify', { serial: '8659623756140', code: '000000' })
  t.equal(wrong.status, 422)
  t.match(text(wrong.body), /That code didn't work/)
  const replayed = await b.post('/security-info/verify', { serial: '8659623756140', code: totpAt(seeds['8659623756140']!.hex, NOW + 30) })
  t.match(text(replayed.body), /That code didn't work/, 'a code already used is refused')
  const right = await b.post('/security-info/verify', { serial: '8659623756140', code: totpAt(seeds['8659623756140']!.hex, NOW + 60) })
  t.equal(right.location, '/security-info/add')
  t.equal((await b.get('/security-info/hardware-token/serial')).status, 200)
  const types = (await events('8659623756140')).map((e) => e.type)
  t.same(types.slice(-4), ['OtpVerified', 'OtpRejected', 'OtpRejected', 'OtpVerified'])
})

t.test('a wrong code keeps the user on the step with a clear message and an empty field; five lock the activation', async (t) => {
  clock.now = new Date((NOW + 90) * 1000)
  const b = new Browser(app)
  await b.signIn('bob@example.com')
  const wrong = await enroll(b, '8659623756142', 'Bob key', '123456')
  t.equal(wrong.status, 422)
  t.match(text(wrong.body), /That code didn't work. Check the code on your token and try again./)
  t.match(wrong.body, /id="code" name="code" value=""/, 'the code is not kept')
  const malformed = await b.post('/security-info/hardware-token/code', { code: '12ab' })
  t.match(text(malformed.body), /Enter the 6-digit code displayed on your token/)
  for (let i = 0; i < 4; i++) await b.post('/security-info/hardware-token/code', { code: String(200000 + i) })
  const locked = await b.post('/security-info/hardware-token/code', { code: totpAt(seeds['8659623756142']!.hex, NOW + 90) })
  t.match(text(locked.body), /Too many wrong codes/, 'even the right code is refused now')
  const types = (await events('8659623756142')).map((e) => e.type)
  t.same(types, ['TokenImported', 'TokenAssigned', ...Array(5).fill('TokenActivationFailed')])
})

t.test('the activation window is one minute either way for a 30 s token and two for a 60 s token', async (t) => {
  clock.now = new Date((NOW + 120) * 1000)
  const carol = await addUser(app, 'carol@example.com')
  t.ok(carol.userId)
  const b = new Browser(app)
  await b.signIn('carol@example.com')
  const late = await enroll(b, '8659623756141', 'Late', totpAt(seeds['8659623756141']!.hex, NOW + 120 - 90))
  t.equal(late.status, 422, 'a code from 90 s ago is refused')
  const ok = await b.post('/security-info/hardware-token/code', { code: totpAt(seeds['8659623756141']!.hex, NOW + 120 - 60) })
  t.equal(ok.status, 303, 'a code from 60 s ago is accepted')

  const dave = new Browser(app)
  await addUser(app, 'dave@example.com')
  await dave.signIn('dave@example.com')
  const sixty = await enroll(dave, '8659623756160', 'Slow', totpAt(seeds['8659623756160']!.hex, NOW + 120 - 120, { period: 60 }))
  t.equal(sixty.status, 303, 'a 60 s token takes a code from 2 minutes ago')
})

t.test('renaming and deleting a method need a code and are events; a deleted token is held for its user', async (t) => {
  const b = new Browser(app)
  await b.signIn('carol@example.com')
  const ask = await b.get('/security-info/methods/8659623756141/rename')
  t.equal(ask.location, '/security-info/verify', 'a code first')
  await b.get('/security-info/verify')
  const verified = await b.post('/security-info/verify', { serial: '8659623756141', code: totpAt(seeds['8659623756141']!.hex, NOW + 90) })
  t.equal(verified.location, '/security-info/methods/8659623756141/rename', 'then back to the change')
  await b.get(verified.location!)
  const empty = await b.post('/security-info/methods/8659623756141/rename', { name: '   ' })
  t.equal(empty.status, 422)
  t.match(text(empty.body), /Give your token a name of 1 to 64 characters/)
  const renamed = await b.post('/security-info/methods/8659623756141/rename', { name: 'Desk key' })
  t.equal(renamed.location, '/security-info?notice=renamed')
  t.match(text((await b.follow(renamed)).body), /Desk key/)

  const confirm = await b.get('/security-info/methods/8659623756141/remove')
  t.match(text(confirm.body), /Are you sure you want to delete Desk key/)
  const removed = await b.post('/security-info/methods/8659623756141/remove', {})
  t.equal(removed.location, '/security-info?notice=removed')
  t.match(text((await b.follow(removed)).body), /You have no sign-in methods yet/)
  t.same((await events('8659623756141')).map((e) => e.type).slice(-2), ['TokenRenamed', 'TokenUnassigned'])
  const row = await database.db.selectFrom('tokens').selectAll().where('serial', '=', '8659623756141').executeTakeFirstOrThrow()
  const carol = await database.db.selectFrom('users').select('id').where('upn', '=', 'carol@example.com').executeTakeFirstOrThrow()
  t.match(row, { status: 'inventory', user_id: null, name: null, held_for: carol.id }, 'unassigned and held for carol')

  const other = new Browser(app)
  await other.signIn('alice@example.com')
  t.equal((await other.get('/security-info/methods/8659623756160/remove')).status, 404, "someone else's method is not found")
  await other.get('/security-info')
  t.equal((await other.post('/security-info/methods/8659623756160/remove', {})).status, 404, 'and cannot be deleted')
})

t.test('a form without its CSRF token is refused and changes nothing', async (t) => {
  const b = new Browser(app)
  await b.signIn('dave@example.com')
  await b.get('/security-info')
  const before = (await events('8659623756160')).length
  const forged = await b.post('/security-info/methods/8659623756160/rename', { name: 'Hacked' }, { csrf: null })
  t.equal(forged.status, 403)
  t.match(text(forged.body), /This form has expired/)
  t.equal((await events('8659623756160')).length, before)
})

t.test('pages carry a strict Content Security Policy and other security headers', async (t) => {
  const page = await new Browser(app).get('/login')
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /default-src 'none'/)
  t.match(csp, /form-action 'self'/)
  t.match(csp, /frame-ancestors 'none'/)
  t.notMatch(csp, /unsafe-inline/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.match(page.body, /<label for="upn">Email or username<\/label>/)
})

t.test('code attempts are rate limited per user: the 11th in a minute gets 429 with Retry-After', async (t) => {
  await addUser(app, 'erin@example.com')
  await importEntra(app, [`erin@example.com,8659623756170,${seedFor('8659623756170')},30,Token2,C202`])
  const b = new Browser(app)
  b.ip = '10.0.0.9'
  await b.signIn('erin@example.com')
  await b.get('/security-info/hardware-token/serial')
  const statuses: number[] = []
  for (let i = 0; i < 11; i++) statuses.push((await b.post('/security-info/hardware-token/serial', { serial: `99${i}` })).status)
  t.same(statuses.slice(0, 10), Array(10).fill(422))
  const limited = await b.post('/security-info/hardware-token/serial', { serial: '8659623756170' })
  t.equal(limited.status, 429)
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when')
  t.match(text(limited.body), /Too many attempts/)
})

t.test('after every enrollment, rename, removal and lock, the read models equal a rebuild from the log', async (t) => {
  const { assertRebuildEqual } = await import('../helpers/rebuild.js')
  await assertRebuildEqual(t, database.db, database.store, ['tokens', 'streams', 'users'])
})

t.test('a post of another content type without a CSRF token is refused too (a text/plain form)', async (t) => {
  const b = new Browser(app)
  await b.signIn('dave@example.com')
  await b.get('/security-info')
  const cookie = b.cookieHeader()
  const before = (await events('8659623756160')).length
  const plain = await app.inject({ method: 'POST', url: '/security-info/methods/8659623756160/remove', payload: 'x=1',
    headers: { 'content-type': 'text/plain', cookie } })
  t.equal(plain.statusCode, 403)
  const bare = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.equal(bare.statusCode, 403, 'a post with no body at all needs the token as well')
  t.equal((await events('8659623756160')).length, before, 'nothing changed')
})
