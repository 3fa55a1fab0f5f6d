// Admin pages over HTTP: only admins who entered a code get in; each lifecycle operation, group and
// policy change, and temporary code through the forms, its event written with the admin as actor;
// a refused operation re-renders the page with the reason and writes nothing.
import t from 'tap'
import { sql } from 'kysely'
import { activateToken, assignToken, verifyCode } from '../../src/commands/tokens.js'
import { grantRole } from '../../src/commands/users.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const { app, database, clock } = await testApp(t)
const T0 = 1_800_000_000
clock.now = new Date(T0 * 1000)
const ada = await addUser(app, 'ada@example.com')
const alice = await addUser(app, 'alice@example.com')
await grantRole(app.commands, 'ada@example.com', 'admin', metadata())
await importEntra(app, [
  `ada@example.com,AD-1,${SEED_B32},30,Token2,C202`,
  `alice@example.com,AL-1,${SEED_B32},30,Token2,C202`,
  `,INV-1,${SEED_B32},30,Feitian,OTP c200`,
])
await activateToken(app.commands, { serial: 'AD-1', userId: ada.userId, name: 'Ada key', code: totpAt(SEED_HEX, T0) }, metadata())
await activateToken(app.commands, { serial: 'AL-1', userId: alice.userId, name: 'Alice key', code: totpAt(SEED_HEX, T0) }, metadata())

async function eventCount(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
}
async function lastEvent(stream: string) {
  return (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${stream} order by stream_version desc limit 1`.execute(database.db)).rows[0]!
}

let step = T0
async function signedInAndVerified(upn: string, serial: string): Promise<Browser> {
  const b = new Browser(app)
  await b.signIn(upn)
  step += 30
  clock.now = new Date(step * 1000)
  await b.get('/security-info/verify')
  const verified = await b.post('/security-info/verify', { serial, code: totpAt(SEED_HEX, step) })
  t.equal(verified.status, 303, `${upn} verified with a code`)
  return b
}

t.test('the admin pages need the admin role and a code: the sign-in page, then Enter code, then back', async (t) => {
  const anonymous = new Browser(app)
  const first = await anonymous.get('/admin/tokens?status=active')
  t.equal(first.status, 303)
  t.equal(first.location, '/login')

  const b = new Browser(app)
  await b.signIn('ada@example.com')
  const gate = await b.get('/admin/tokens?status=active')
  t.equal(gate.location, '/security-info/verify', 'a password alone is not enough')
  step += 30
  clock.now = new Date(step * 1000)
  await b.get('/security-info/verify')
  const back = await b.post('/security-info/verify', { serial: 'AD-1', code: totpAt(SEED_HEX, step) })
  t.equal(back.location, '/admin/tokens?status=active', 'back where she was going')
  const list = text((await b.get(back.location!)).body)
  t.match(list, /AD-1 active ada@example.com Ada key Token2 C202/)
  t.notMatch(list, /INV-1/, 'filtered by state')

  clock.now = new Date((step + 3601) * 1000)
  t.equal((await b.get('/admin/tokens')).location, '/security-info/verify', 'an hour later, a code again')

  const user = await signedInAndVerified('alice@example.com', 'AL-1')
  const refused = await user.get('/admin/tokens')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Admins only/)
  const post = await user.post('/admin/tokens/INV-1/assign', { user: 'alice@example.com' })
  t.equal(post.status, 403, 'nor can she post')
  t.match(text(post.body), /Admins only/)
})

t.test("an admin's first token comes from an admin, and activating it is not the code admin pages ask for; a form without its CSRF token is refused", async (t) => {
  const eve = await addUser(app, 'eve@example.com')
  await grantRole(app.commands, 'eve@example.com', 'admin', metadata())
  await importEntra(app, [`,EVE-1,${SEED_B32},30,Token2,C202`])
  const b = new Browser(app)
  await b.signIn('eve@example.com')
  step += 30
  clock.now = new Date(step * 1000)
  await b.get('/security-info/hardware-token/serial')
  const claimed = await b.post('/security-info/hardware-token/serial', { serial: 'EVE-1' })
  t.equal(claimed.status, 422, 'a password and a token from the inventory add no method to an admin')
  await assignToken(app.commands, { serial: 'EVE-1', userId: eve.userId }, metadata({ actor: { type: 'admin', id: 'ada@example.com' } }))
  await b.post('/security-info/hardware-token/serial', { serial: 'EVE-1' })
  await b.post('/security-info/hardware-token/name', { name: 'Eve key' })
  const added = await b.post('/security-info/hardware-token/code', { code: totpAt(SEED_HEX, step) })
  t.match(added.location, /^\/security-info\/hardware-token\/done/, 'another admin assigned it: she activates it')
  t.equal((await b.get('/admin/tokens')).location, '/security-info/verify', 'which does not open the admin pages')
  step += 30
  clock.now = new Date(step * 1000)
  await b.get('/security-info/verify')
  const verified = await b.post('/security-info/verify', { serial: 'EVE-1', code: totpAt(SEED_HEX, step) })
  t.equal(verified.location, '/admin/tokens', 'a code from the now active token does')

  const before = await eventCount()
  const forged = await b.post('/admin/tokens/INV-1/disable', {}, { csrf: null })
  t.equal(forged.status, 403)
  t.match(text(forged.body), /This form has expired/)
  t.equal(await eventCount(), before, 'nothing written')
})

t.test('search by serial, user, manufacturer and model', async (t) => {
  const b = await signedInAndVerified('ada@example.com', 'AD-1')
  t.match(text((await b.get('/admin/tokens?serial=INV')).body), /INV-1 inventory Feitian OTP c200/)
  const byUser = text((await b.get('/admin/tokens?user=alice%40example.com')).body)
  t.match(byUser, /AL-1/)
  t.notMatch(byUser, /AD-1/)
  t.match(text((await b.get('/admin/tokens?manufacturer=Feitian&model=OTP+c200')).body), /INV-1/)
  t.match(text((await b.get('/admin/tokens?user=nobody%40example.com')).body), /No token matches/)
})

t.test('every lifecycle operation through the token page, each an event with the admin as actor', async (t) => {
  const b = await signedInAndVerified('ada@example.com', 'AD-1')
  const detail = text((await b.get('/admin/tokens/INV-1')).body)
  t.match(detail, /State inventory/)
  t.match(detail, /Token imported|imported hardware token INV-1/)

  const destructive: Record<string, RegExp> = {
    disable: /Disable token INV-1\? Token INV-1 will refuse every code until it is enabled again/,
    unassign: /Unassign token INV-1\? Token INV-1 will be taken from its user and go back to the inventory/,
    revoke: /Revoke token INV-1\? Token INV-1 will be revoked for good \(lost\): its seed is destroyed/,
  }
  const run = async (operation: string, form: Record<string, string>, expect: string, notice: RegExp) => {
    await b.get('/admin/tokens/INV-1')
    if (destructive[operation]) {
      // First the consequence in words, and nothing written; then the confirmed post.
      const before = await lastEvent('token-INV-1')
      const ask = await b.post(`/admin/tokens/INV-1/${operation}`, form)
      t.equal(ask.status, 200, `${operation}: asks to confirm`)
      t.match(text(ask.body), destructive[operation]!)
      t.same(await lastEvent('token-INV-1'), before, `${operation}: nothing written before the confirmation`)
      form = { ...form, confirmed: 'yes' }
    }
    const res = await b.post(`/admin/tokens/INV-1/${operation}`, form)
    t.equal(res.status, 303, `${operation}: redirected`)
    const shown = text((await b.follow(res)).body)
    t.match(shown, notice, `${operation}: the page says so`)
    const event = await lastEvent('token-INV-1')
    t.equal(event.type, expect, `${operation}: ${expect}`)
    t.same(event.metadata.actor, { type: 'admin', id: 'ada@example.com' })
    return shown
  }
  t.match(await run('assign', { user: 'alice@example.com' }, 'TokenAssigned', /The token was assigned/), /User alice@example.com/)
  await activateToken(app.commands, { serial: 'INV-1', userId: alice.userId, name: 'Spare', code: totpAt(SEED_HEX, step) }, metadata())
  await run('disable', {}, 'TokenDisabled', /The token was disabled/)
  await run('enable', {}, 'TokenEnabled', /The token was enabled/)

  // Ten wrong codes lock it; unlock through the page.
  for (let i = 0; i < 10; i++) await verifyCode(app.commands, { serial: 'INV-1', userId: alice.userId, code: String(200000 + i) }, metadata()).catch(() => {})
  t.match(text((await b.get('/admin/tokens/INV-1')).body), /Locked until /)
  t.match(await run('unlock', {}, 'TokenUnlocked', /unlocked and its failure count reset/), /Locked no/)

  // A token whose clock runs 50 minutes fast: resync with two consecutive codes.
  const fast = step + 3000
  t.match(await run('resync', { first: totpAt(SEED_HEX, fast), second: totpAt(SEED_HEX, fast + 30) }, 'TokenResynced', /resynchronised/), /Drift 10[01] time steps/)
  t.match(await run('unassign', {}, 'TokenUnassigned', /back in the inventory/), /State inventory/)
  const revoked = await run('revoke', { reason: 'lost' }, 'TokenSecretDestroyed', /revoked and its seed destroyed/)
  t.match(revoked, /State revoked/)
  t.match(revoked, /Seed destroyed/)
  t.notMatch(revoked, /Manage/, 'a revoked token offers no operation')
  const history = (await sql<{ type: string }>`select type from events where stream_id = 'token-INV-1' order by stream_version`.execute(database.db)).rows.map((r) => r.type)
  t.same(history.slice(-3), ['TokenUnassigned', 'TokenRevoked', 'TokenSecretDestroyed'])
})

t.test('refused operations re-render the page with the reason, keep the input, and write nothing', async (t) => {
  const b = await signedInAndVerified('ada@example.com', 'AD-1')
  const before = await eventCount()
  await b.get('/admin/tokens/AL-1')
  const cases: [string, string, Record<string, string>, number, RegExp][] = [
    ['a revoked token', 'INV-1/enable', {}, 409, /token INV-1 is revoked/],
    ['unlock a token that is not locked', 'AL-1/unlock', {}, 409, /is not locked/],
    ['non-consecutive resync codes', 'AL-1/resync', { first: totpAt(SEED_HEX, step + 600), second: totpAt(SEED_HEX, step + 660) }, 422, /not consecutive codes/],
    ['codes that are not codes', 'AL-1/resync', { first: '12', second: 'abcdef' }, 400, /two consecutive codes from the token, 6 or 8 digits/],
    ['assign an assigned token', 'AL-1/assign', { user: 'ada@example.com' }, 409, /already assigned; unassign it first/],
    ['no such operation', 'AL-1/explode', {}, 404, /There is no operation "explode"/],
    ['no revocation reason', 'AL-1/revoke', { reason: 'bored' }, 400, /Choose why the token is revoked/],
  ]
  for (const [what, path, form, status, message] of cases) {
    const res = await b.post(`/admin/tokens/${path}`, form)
    t.equal(res.status, status, what)
    t.match(text(res.body), message, what)
  }
  await b.get('/admin/tokens/INV-1')
  await b.get('/admin/tokens/AL-1')
  const kept = await b.post('/admin/tokens/AL-1/resync', { first: '123456', second: '654321' })
  t.notMatch(kept.body, /value="123456"/, 'the codes are not kept')
  t.equal(await eventCount(), before, 'nothing was written')
  t.equal((await b.get('/admin/tokens/NOPE-9')).status, 404)
})

t.test('a user page: groups, effective policy, and a temporary code shown once', async (t) => {
  const b = await signedInAndVerified('ada@example.com', 'AD-1')
  const found = await b.get('/admin/users?upn=Alice%40Example.com')
  t.equal(found.location, '/admin/users/alice%40example.com')
  let page = text((await b.follow(found)).body)
  t.match(page, /Groups none Security policy Default \(the default\)/)

  const joined = await b.post('/admin/users/alice%40example.com/groups', { group: 'Finance' })
  t.match(text((await b.follow(joined)).body), /added to the group.*Groups finance/)
  t.same(await lastEvent(`user-${alice.userId}`).then((e) => [e.type, e.data.group, e.metadata.actor.id]), ['UserAddedToGroup', 'finance', 'ada@example.com'])
  const bad = await b.post('/admin/users/alice%40example.com/groups', { group: 'no spaces' })
  t.equal(bad.status, 422)
  t.match(text(bad.body), /a group name is 1 to 64/)

  const issued = await b.post('/admin/users/alice%40example.com/temporary-code', { validDays: '2', oneTime: 'yes' })
  t.equal(issued.status, 200)
  t.equal(issued.headers['cache-control'], 'no-store', 'the page with the code is not cached')
  const code = issued.body.match(/id="temporary-code">(\d{4}-\d{4}-\d{4})</)?.[1]
  t.ok(code, 'the code is shown')
  t.equal((await lastEvent(`user-${alice.userId}`)).type, 'TemporaryCodeIssued')
  page = (await b.get('/admin/users/alice%40example.com')).body
  t.notOk(page.includes(code!), 'and not shown again')
  const tooLong = await b.post('/admin/users/alice%40example.com/temporary-code', { validDays: '45' })
  t.equal(tooLong.status, 422)
  t.match(text(tooLong.body), /validity must be 1 to 30 days/)

  const leave = await b.post('/admin/users/alice%40example.com/groups', { remove: 'finance' })
  t.match(text((await b.follow(leave)).body), /removed from the group.*Groups none/)
})

t.test('policies through the pages: create, assign to a group, change, refuse bad input, delete', async (t) => {
  const b = await signedInAndVerified('ada@example.com', 'AD-1')
  t.match(text((await b.get('/admin/policies')).body), /Default \(default\) everyone else Hardware token, Authenticator app, Temporary code/)
  const form = { id: 'strict', name: 'Strict', priority: '10', methods: 'hardware', digits: '6', totpWindow: '0', lockThreshold: '3',
    lockSeconds: '600', activationAttemptsPerMinute: '5', maxMethods: '2', temporaryCodeMaxDays: '3',
    sentCodeLength: '6', sentCodeMinutes: '5', sendsPerHour: '10', activationCodeDays: '7' }
  const created = await b.post('/admin/policies', form)
  t.equal(created.location, '/admin/policies/strict?done=saved')
  t.match(text((await b.follow(created)).body), /The policy was saved/)
  const event = await lastEvent('policy-strict')
  t.match(event, { type: 'PolicyCreated', data: { settings: { methods: ['hardware'], digits: [6], totpWindow: 0, lockThreshold: 3 } }, metadata: { actor: { id: 'ada@example.com' } } })

  const again = await b.post('/admin/policies', form)
  t.equal(again.status, 409, 'the creation form does not overwrite a policy')
  t.match(text(again.body), /a policy strict already exists/)

  await b.post('/admin/users/alice%40example.com/groups', { group: 'finance' })
  await b.get('/admin/policies/strict')
  const assigned = await b.post('/admin/policies/strict/assign', { kind: 'group', target: 'finance' })
  t.match(text((await b.follow(assigned)).body), /The policy was assigned.*Group finance/)
  t.match(text((await b.get('/admin/users/alice%40example.com')).body), /Security policy Strict \(from a group\)/)
  t.match(text((await b.get('/admin/users/alice%40example.com')).body), /does not allow temporary codes/, 'the user page follows the policy')

  const before = await eventCount()
  await b.get('/admin/policies/strict')
  const bad = await b.post('/admin/policies/strict', { ...form, lockThreshold: 'many' })
  t.equal(bad.status, 400)
  t.match(text(bad.body), /Wrong codes before the token locks: enter a whole number/)
  t.match(bad.body, /id="lockThreshold" name="lockThreshold"[^>]*value="many"/, 'the input is kept')
  const none = await b.post('/admin/policies/strict', { ...form, methods: '' })
  t.equal(none.status, 422)
  t.match(text(none.body), /at least one sign-in method/)
  const unknownUser = await b.post('/admin/policies/strict/assign', { kind: 'user', target: 'nobody@example.com' })
  t.equal(unknownUser.status, 404)
  t.match(text(unknownUser.body), /No user nobody@example.com/)
  t.equal(await eventCount(), before, 'refusals wrote nothing')

  const changed = await b.post('/admin/policies/strict', { ...form, lockThreshold: '4' })
  t.equal(changed.status, 303)
  t.equal((await lastEvent('policy-strict')).type, 'PolicyChanged')
  await b.get('/admin/policies/strict')
  const removed = await b.post('/admin/policies/strict/unassign', { kind: 'group', target: 'finance' })
  t.match(text((await b.follow(removed)).body), /The assignment was removed.*Nobody yet/)
  await b.get('/admin/policies/strict')
  const ask = await b.post('/admin/policies/strict/delete', {})
  t.match(text(ask.body), /Delete security policy strict\? Its users and groups will fall back to the next policy/)
  t.equal((await lastEvent('policy-strict')).type, 'PolicyUnassigned', 'not deleted before the confirmation')
  const deleted = await b.post('/admin/policies/strict/delete', { confirmed: 'yes' })
  t.match(text((await b.follow(deleted)).body), /The policy was deleted/)
  t.equal((await b.get('/admin/policies/strict')).status, 404)
  t.equal((await b.get('/admin/policies/default')).status, 200, 'the default always has a page')
})

t.test('the API reference is served as a page from the OpenAPI document', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/admin/api/docs', headers: { accept: 'text/html' } })
  t.equal(res.statusCode, 200)
  const page = text(res.body)
  t.match(page, /POST \/admin\/api\/tokens\/\{serial\}\/resync Resynchronise a drifted token/)
  t.match(page, /PUT \/admin\/api\/policies\/\{id\} Create or change a security policy/)
  t.match(page, /GET \/audit\/api\/export Stream events/)
  t.notMatch(res.body, /<script/, 'no script: the strict CSP holds')
  const doc = (await app.inject({ method: 'GET', url: '/admin/api/openapi.json' })).json()
  t.equal(doc.paths['/admin/api/policies/{id}'].put.summary.startsWith('Create or change'), true)
})
