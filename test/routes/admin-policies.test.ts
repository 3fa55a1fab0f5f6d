// Security policies through the admin JSON API: set, assign to users and groups, the effective policy
// (own > group > default), and what a policy changes at once: verification window and lock, allowed
// methods and digits, the number of methods, temporary codes. Refusals are 4xx and write nothing.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { activateToken, checkSerial, verifyCode } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS, type PolicySettings } from '../../src/domain/policy/events.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { assertRebuildEqual } from '../helpers/rebuild.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const { app, database, clock } = await testApp(t)
const T0 = 1_800_000_000
clock.now = new Date(T0 * 1000)
const admin = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const auditor = await createApiKey(app.commands, { role: 'auditor', name: 'audit' }, metadata())
const alice = await addUser(app, 'alice@example.com')
const bob = await addUser(app, 'bob@example.com')
await addUser(app, 'carol@example.com')
await importEntra(app, [
  `alice@example.com,TP-A1,${SEED_B32},30,Token2,C202`,
  `bob@example.com,TP-B1,${SEED_B32},30,Token2,C202`,
  `,TP-FREE,${SEED_B32},30,Token2,C202`,
])
await activateToken(app.commands, { serial: 'TP-A1', userId: alice.userId, name: 'Key', code: totpAt(SEED_HEX, T0) }, metadata())
await activateToken(app.commands, { serial: 'TP-B1', userId: bob.userId, name: 'Key', code: totpAt(SEED_HEX, T0) }, metadata())

const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: object, key = admin.key) => app.inject({
  method, url: `/admin/api${path}`, payload: body, headers: { authorization: `Bearer ${key}` },
})
const strict: PolicySettings = { ...DEFAULT_SETTINGS, totpWindow: 0, lockThreshold: 2, lockSeconds: 120, maxMethods: 1, temporaryCodeMaxDays: 2 }
async function eventCount(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
}
async function policyEvents(id: string) {
  return (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`policy-${id}`} order by stream_version`.execute(database.db)).rows
}
const effective = async (upn: string) => (await api('GET', `/users/${upn}/policy`)).json().policy

t.test('with no policy written, everyone gets the built-in default', async (t) => {
  t.match(await effective('alice@example.com'), { id: 'default', source: 'default', settings: DEFAULT_SETTINGS })
  const list = (await api('GET', '/policies')).json().policies
  t.same(list.map((p: { policyId: string }) => p.policyId), ['default'], 'the default is listed even before it is written')
})

t.test('a policy is created, assigned to a group and to a user; its events carry the admin as actor', async (t) => {
  const created = await api('PUT', '/policies/strict', { name: 'Strict', priority: 10, settings: strict })
  t.equal(created.statusCode, 200, created.body)
  t.match(created.json().policy, { policyId: 'strict', name: 'Strict', priority: 10, settings: strict })

  t.equal((await api('POST', '/users/bob@example.com/groups/Finance')).statusCode, 200)
  const assigned = await api('POST', '/policies/strict/assign', { group: 'finance' })
  t.equal(assigned.statusCode, 200, assigned.body)
  t.match(await effective('bob@example.com'), { id: 'strict', source: 'group' }, "bob gets his group's policy")
  t.match(await effective('alice@example.com'), { id: 'default', source: 'default' }, 'alice is in no group')

  const events = await policyEvents('strict')
  t.same(events.map((e) => e.type), ['PolicyCreated', 'PolicyAssigned'])
  t.same(events[1]!.data.target, { kind: 'group', id: 'finance' }, 'group names are kept in lower case')
  t.same(events[0]!.metadata.actor, { type: 'admin', id: `api-key:${admin.id}` })
  const groupEvent = (await sql<{ type: string }>`select type from events where stream_id = ${`user-${bob.userId}`} order by stream_version desc limit 1`.execute(database.db)).rows[0]
  t.equal(groupEvent!.type, 'UserAddedToGroup')
})

t.test("a user's own policy wins over the group's; among groups the lower priority number wins", async (t) => {
  const relaxed = { ...DEFAULT_SETTINGS, totpWindow: 2 }
  t.equal((await api('PUT', '/policies/relaxed', { name: 'Relaxed', priority: 50, settings: relaxed })).statusCode, 200)
  t.equal((await api('PUT', '/policies/first', { name: 'First', priority: 5, settings: relaxed })).statusCode, 200)
  t.equal((await api('POST', '/users/bob@example.com/groups/ops')).statusCode, 200)
  t.equal((await api('POST', '/policies/first/assign', { group: 'ops' })).statusCode, 200)
  t.match(await effective('bob@example.com'), { id: 'first', source: 'group' }, 'priority 5 beats priority 10')
  t.equal((await api('POST', '/policies/relaxed/assign', { user: 'bob@example.com' })).statusCode, 200)
  t.match(await effective('bob@example.com'), { id: 'relaxed', source: 'user' }, 'his own policy beats both groups')
  t.equal((await api('POST', '/policies/relaxed/unassign', { user: 'bob@example.com' })).statusCode, 200)
  t.equal((await api('DELETE', '/policies/first')).statusCode, 200)
  t.equal((await api('DELETE', '/users/bob@example.com/groups/ops')).statusCode, 200)
  t.match(await effective('bob@example.com'), { id: 'strict', source: 'group' }, 'unassigned, deleted and removed: back to strict')
})

t.test('the policy applies to verification at once: window 0 and a lock after 2 wrong codes for 2 minutes', async (t) => {
  clock.now = new Date((T0 + 300) * 1000)
  const previous = totpAt(SEED_HEX, T0 + 270)
  await t.rejects(verifyCode(app.commands, { serial: 'TP-B1', userId: bob.userId, code: previous }, metadata()), { name: 'WrongCode' },
    "the previous step's code is outside bob's window of 0")
  const alicesOk = await verifyCode(app.commands, { serial: 'TP-A1', userId: alice.userId, code: previous }, metadata())
  t.ok(alicesOk.lastStep, "the same code is inside alice's default window of 1")
  await t.rejects(verifyCode(app.commands, { serial: 'TP-B1', userId: bob.userId, code: '000000' }, metadata()), { name: 'TokenLocked' },
    'the second wrong code locks under the strict policy (default: 10)')
  const locked = (await sql<{ locked_until: Date }>`select locked_until from tokens where serial = 'TP-B1'`.execute(database.db)).rows[0]!
  t.equal(locked.locked_until.getTime(), (T0 + 300 + 120) * 1000, "the lock lasts the policy's 120 seconds")
})

t.test('a policy that does not allow 6-digit codes refuses the token at sign-in and at enrollment, without counting a failure', async (t) => {
  t.equal((await api('PUT', '/policies/eight', { name: 'Eight digits', priority: 1, settings: { ...DEFAULT_SETTINGS, digits: [8] } })).statusCode, 200)
  t.equal((await api('POST', '/policies/eight/assign', { user: 'alice@example.com' })).statusCode, 200)
  clock.now = new Date((T0 + 600) * 1000)
  const before = (await sql<{ failures: number }>`select failures from tokens where serial = 'TP-A1'`.execute(database.db)).rows[0]!.failures
  await t.rejects(verifyCode(app.commands, { serial: 'TP-A1', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 600) }, metadata()),
    { name: 'NotAllowedByPolicy' }, 'even a right code')
  const after = (await sql<{ failures: number; last_step: string }>`select failures, last_step from tokens where serial = 'TP-A1'`.execute(database.db)).rows[0]!
  t.equal(after.failures, before, 'no failure counted')
  t.not(Number(after.last_step), Math.floor((T0 + 600) / 30), 'the code was not accepted')
  const last = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = 'token-TP-A1' order by stream_version desc limit 1`.execute(database.db)).rows[0]!
  t.match(last, { type: 'OtpRejected', data: { reason: 'not-allowed' } })
  await t.rejects(checkSerial(app.commands, 'TP-FREE', alice.userId), { name: 'NotAllowedByPolicy' }, 'nor can she add a 6-digit token')
  t.equal((await api('POST', '/policies/eight/unassign', { user: 'alice@example.com' })).statusCode, 200)
  const ok = await verifyCode(app.commands, { serial: 'TP-A1', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 600) }, metadata())
  t.equal(ok.lastStep, Math.floor((T0 + 600) / 30), 'unassigned, the token verifies again')
})

t.test('the number of methods and the method list follow the policy', async (t) => {
  await t.rejects(checkSerial(app.commands, 'TP-FREE', bob.userId), { name: 'TooManyMethods', message: /already have 1 authenticator method\./ },
    'strict allows bob one method')
  t.ok(await checkSerial(app.commands, 'TP-FREE', alice.userId), 'the default allows alice five')

  const b = new Browser(app)
  await b.signIn('carol@example.com')
  t.match(text((await b.get('/security-info/add')).body), /Hardware token/, 'carol may add a hardware token')
  t.equal((await api('PUT', '/policies/codes-only', { name: 'Temporary codes only', priority: 1, settings: { ...DEFAULT_SETTINGS, methods: ['temporary_code'] } })).statusCode, 200)
  t.equal((await api('POST', '/policies/codes-only/assign', { user: 'carol@example.com' })).statusCode, 200)
  const none = await b.get('/security-info/add')
  t.match(text(none.body), /security policy doesn't let you add a sign-in method/)
  t.notMatch(none.body, /<option/, 'no choice is offered')
  const refused = await b.post('/security-info/add', { method: 'hardware-token' })
  t.equal(refused.status, 422, 'nor can the choice be posted')
})

t.test("activation attempts per minute follow the user's policy", async (t) => {
  await addUser(app, 'dave@example.com')
  t.equal((await api('PUT', '/policies/slow', { name: 'Slow', priority: 1, settings: { ...DEFAULT_SETTINGS, activationAttemptsPerMinute: 2 } })).statusCode, 200)
  t.equal((await api('POST', '/policies/slow/assign', { user: 'dave@example.com' })).statusCode, 200)
  const b = new Browser(app)
  b.ip = '127.0.0.77'
  await b.signIn('dave@example.com')
  await b.get('/security-info/hardware-token/serial')
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await b.post('/security-info/hardware-token/serial', { serial: `NOPE-${i}` })).status)
  t.same(statuses, [422, 422, 429], 'the third attempt in a minute is refused (the default allows 10)')
})

t.test('temporary codes: the validity is capped by the policy, and a policy without them refuses them', async (t) => {
  const tooLong = await api('POST', '/users/bob@example.com/temporary-code', { validDays: 3 })
  t.equal(tooLong.statusCode, 422)
  t.match(tooLong.json().message, /1 to 2 days under the user's security policy \(Strict\)/)
  t.equal((await api('POST', '/users/bob@example.com/temporary-code', { validDays: 2 })).statusCode, 200)
  t.equal((await api('PUT', '/policies/strict', { name: 'Strict', priority: 10, settings: { ...strict, methods: ['hardware'] } })).statusCode, 200)
  const refused = await api('POST', '/users/bob@example.com/temporary-code', { validDays: 1 })
  t.equal(refused.statusCode, 422)
  t.match(refused.json().message, /does not allow temporary codes/)
  t.same((await policyEvents('strict')).map((e) => e.type), ['PolicyCreated', 'PolicyAssigned', 'PolicyChanged'])
})

t.test('refused: bad settings, the default assigned or deleted, unknown policies and users, twice the same; nothing written', async (t) => {
  const before = await eventCount()
  const cases: [string, 'GET' | 'POST' | 'PUT' | 'DELETE', string, object | undefined, number, RegExp][] = [
    ['a window out of bounds', 'PUT', '/policies/x', { name: 'X', settings: { ...DEFAULT_SETTINGS, totpWindow: 11 } }, 400, /totpWindow must be <= 10/],
    ['an unknown method', 'PUT', '/policies/x', { name: 'X', settings: { ...DEFAULT_SETTINGS, methods: ['carrier-pigeon'] } }, 400, /allowed values/],
    ['no method at all', 'PUT', '/policies/x', { name: 'X', settings: { ...DEFAULT_SETTINGS, methods: [] } }, 422, /at least one sign-in method/],
    ['a bad id', 'PUT', '/policies/Bad%20Id', { name: 'X', settings: DEFAULT_SETTINGS }, 422, /policy id is/],
    ['a blank name', 'PUT', '/policies/x', { name: '  ', settings: DEFAULT_SETTINGS }, 422, /name must be 1 to 100/],
    ['the default assigned', 'POST', '/policies/default/assign', { user: 'bob@example.com' }, 409, /cannot be assigned/],
    ['the default deleted', 'DELETE', '/policies/default', undefined, 409, /cannot be deleted/],
    ['an unknown policy', 'POST', '/policies/nope/assign', { group: 'finance' }, 404, /no policy nope/],
    ['an unknown user', 'POST', '/policies/strict/assign', { user: 'nobody@example.com' }, 404, /No user nobody@example.com/],
    ['assigned twice', 'POST', '/policies/strict/assign', { group: 'finance' }, 409, /already assigned to that group/],
    ['unassigned when not assigned', 'POST', '/policies/strict/unassign', { group: 'sales' }, 409, /not assigned to that group/],
    ['a bad group name', 'POST', '/users/bob@example.com/groups/a%20b', undefined, 422, /group name is/],
    ['both a user and a group', 'POST', '/policies/strict/assign', { user: 'bob@example.com', group: 'x' }, 400, /must NOT have more than 1/],
  ]
  for (const [what, method, path, body, status, message] of cases) {
    const res = await api(method, path, body)
    t.equal(res.statusCode, status, what)
    t.match(res.json().message, message, what)
  }
  t.equal((await api('GET', '/policies', undefined, auditor.key)).statusCode, 403, 'an auditor key may not read or change policies')
  t.equal(await eventCount(), before, 'nothing was written')
})

t.test('the policies read model equals a rebuild from the log', async (t) => {
  await assertRebuildEqual(t, database.db, database.store, ['policies', 'users'])
})
