// Token lifecycle through the admin JSON API: each operation an event with the key as actor; each
// refused operation a clear 4xx with nothing written.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { activateToken, verifyCode } from '../../src/commands/tokens.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const { app, database, clock } = await testApp(t)
const T0 = 1_800_000_000
clock.now = new Date(T0 * 1000)
const admin = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const auditor = await createApiKey(app.commands, { role: 'auditor', name: 'audit' }, metadata())
const alice = await addUser(app, 'alice@example.com')
await importEntra(app, [`,8659623756140,${SEED_B32},30,Token2,C202`, `,8659623756141,${SEED_B32},30,Token2,C202`])

const call = (path: string, body?: object, key = admin.key) => app.inject({
  method: body === undefined ? 'GET' : 'POST', url: `/admin/api/tokens${path}`, payload: body,
  headers: { authorization: `Bearer ${key}` },
})
async function types(serial = '8659623756140') {
  return (await sql<{ type: string; metadata: any }>`select type, metadata from events where stream_id = ${`token-${serial}`} order by stream_version`.execute(database.db)).rows
}

t.test('assign, disable (codes refused), enable, unassign: each an event with the key as actor', async (t) => {
  const assigned = await call('/8659623756140/assign', { user: 'alice@example.com' })
  t.equal(assigned.statusCode, 200)
  t.match(assigned.json().token, { status: 'assigned', userId: alice.userId })
  await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key', code: totpAt(SEED_HEX, T0) }, metadata())

  t.equal((await call('/8659623756140/disable', {})).statusCode, 200)
  clock.now = new Date((T0 + 30) * 1000)
  await t.rejects(verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 30) }, metadata()),
    { name: 'TokenDisabled' }, 'a disabled token refuses even a right code')
  t.equal((await call('/8659623756140/enable', {})).statusCode, 200)
  const ok = await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 30) }, metadata())
  t.equal(ok.lastStep, Math.floor((T0 + 30) / 30), 'enabled again, the code verifies')

  const events = await types()
  t.same(events.map((e) => e.type), ['TokenImported', 'TokenAssigned', 'TokenRenamed', 'TokenActivated', 'TokenDisabled', 'OtpRejected', 'TokenEnabled', 'OtpVerified'])
  t.same(events[4]!.metadata.actor, { type: 'admin', id: `api-key:${admin.id}` })

  const detail = (await call('/8659623756140')).json()
  t.equal(detail.token.status, 'active')
  t.equal(detail.events.length, events.length, 'the detail lists its history')
  const search = (await call('?user=alice@example.com')).json()
  t.same(search.tokens.map((x: { serial: string }) => x.serial), ['8659623756140'])
  t.same((await call('?status=inventory')).json().tokens.map((x: { serial: string }) => x.serial), ['8659623756141'])
})

t.test('resync with two consecutive codes far outside the window stores the drift', async (t) => {
  clock.now = new Date((T0 + 60) * 1000)
  // A token whose clock runs 50 minutes fast: its codes are 100 steps ahead.
  const fast = T0 + 60 + 3000
  const gap = await call('/8659623756140/resync', { first: totpAt(SEED_HEX, fast), second: totpAt(SEED_HEX, fast + 60) })
  t.equal(gap.statusCode, 422, 'two codes that are not consecutive are refused')
  t.match(gap.json().message, /not consecutive/)
  const behind = await call('/8659623756140/resync', { first: totpAt(SEED_HEX, T0 - 3000), second: totpAt(SEED_HEX, T0 - 2970) })
  t.equal(behind.statusCode, 422, 'a resync behind the last accepted step is refused: it would let used codes in again')
  const res = await call('/8659623756140/resync', { first: totpAt(SEED_HEX, fast), second: totpAt(SEED_HEX, fast + 30) })
  t.equal(res.statusCode, 200)
  t.match(res.json().token, { drift: 101, lastStep: Math.floor((fast + 30) / 30) })
  clock.now = new Date((T0 + 120) * 1000)
  const after = await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 120 + 3030) }, metadata())
  t.equal(after.lastStep, Math.floor((T0 + 120 + 3030) / 30), 'its next code verifies with the drift applied')
})

t.test('refused operations: wrong role, unknown serial, wrong state, bad body; nothing written', async (t) => {
  const before = (await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n
  t.equal((await call('/8659623756140/disable', {}, auditor.key)).statusCode, 403)
  t.equal((await app.inject({ method: 'POST', url: '/admin/api/tokens/8659623756140/disable', payload: {} })).statusCode, 401)
  t.equal((await call('/0000/disable', {})).statusCode, 404)
  const notLocked = await call('/8659623756140/unlock', {})
  t.equal(notLocked.statusCode, 409)
  t.match(notLocked.json().message, /is not locked/)
  const assignedTwice = await call('/8659623756140/assign', { user: 'alice@example.com' })
  t.equal(assignedTwice.statusCode, 409)
  t.match(assignedTwice.json().message, /already assigned/)
  t.equal((await call('/8659623756140/enable', {})).statusCode, 409, 'enabling an enabled token')
  const badReason = await call('/8659623756140/revoke', { reason: 'bored' })
  t.equal(badReason.statusCode, 400)
  t.equal((await call('/8659623756140/resync', { first: 'abc', second: '123456' })).statusCode, 400)
  t.equal((await call('/8659623756141/assign', { user: 'nobody@example.com' })).statusCode, 404)
  t.equal((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n, before, 'no event written')
})

t.test('revoke destroys the seed; a revoked token cannot be activated, enabled or unlocked again', async (t) => {
  const res = await call('/8659623756140/revoke', { reason: 'stolen' })
  t.equal(res.statusCode, 200)
  t.match(res.json().token, { status: 'revoked', seedFingerprint: null })
  t.equal(await app.db.selectFrom('token_secrets').select('serial').where('serial', '=', '8659623756140').executeTakeFirst(), undefined)
  for (const op of ['disable', 'unlock', 'revoke', 'resync']) {
    const again = await call(`/8659623756140/${op}`, op === 'resync' ? { first: '123456', second: '234567' } : op === 'revoke' ? { reason: 'lost' } : {})
    t.equal(again.statusCode, 409, `${op} after revoke`)
  }
  await t.rejects(activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'x', code: totpAt(SEED_HEX, T0 + 150) }, metadata()),
    { name: 'SerialUnavailable' })
  t.same((await types()).slice(-2).map((e) => e.type), ['TokenRevoked', 'TokenSecretDestroyed'])
})

t.test('the read models still equal a rebuild from the log', async (t) => {
  const { assertRebuildEqual } = await import('../helpers/rebuild.js')
  await assertRebuildEqual(t, database.db, database.store, ['tokens', 'streams'])
})

t.test('the admin and audit APIs are described with OpenAPI', async (t) => {
  const res = await app.inject('/admin/api/openapi.json')
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  const paths = Object.keys(doc.paths)
  for (const p of ['/admin/api/tokens/import', '/admin/api/tokens/{serial}/resync', '/admin/api/users/{upn}/temporary-code', '/audit/api/events', '/audit/api/export']) {
    t.ok(paths.includes(p), p)
  }
  t.notOk(paths.some((p) => p.startsWith('/security-info') || p.startsWith('/interaction')), 'pages are not in it')
  t.same(doc.paths['/admin/api/tokens/{serial}/revoke'].post.requestBody.content['application/json'].schema.properties.reason.enum, ['lost', 'stolen', 'retired', 'compromised'])
})
