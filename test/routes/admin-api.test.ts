// POST /admin/api/tokens/import: the same import over HTTP, for machines with an admin API key.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { tessera } from '../helpers/cli.js'
import { addUser, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'

const { app, database, logs } = await testApp(t)
const admin = await createApiKey(app.commands, { role: 'admin', name: 'inventory robot' }, metadata())
const auditor = await createApiKey(app.commands, { role: 'auditor', name: 'audit robot' }, metadata())
await addUser(app, 'helga@contoso.onmicrosoft.com')
const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model'
const SEED = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'

function post(body: string, headers: Record<string, string> = {}, query = '') {
  return app.inject({ method: 'POST', url: `/admin/api/tokens/import${query}`, payload: body,
    headers: { 'content-type': 'text/csv', authorization: `Bearer ${admin.key}`, ...headers } })
}

t.test('an admin key imports a CSV and gets the report', async (t) => {
  const res = await post([HEADER, `Helga@contoso.onmicrosoft.com,1234567,${SEED},60,Contoso,HardwareKey`, `,7654321,${SEED},30,,`,
    `,BAD,JBSWY3DPEHPK3PX1,30,,`].join('\n'))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { imported: 2, rejected: [{ line: 4, serial: 'BAD', reason: 'secret key is not Base32 (letters A-Z and digits 2-7)' }], rejectedCount: 1,
    rejectedByReason: { 'secret key is not Base32 (letters A-Z and digits 2-7)': 1 } })
  const events = await sql<{ type: string; metadata: any }>`select type, metadata from events where stream_id = 'token-1234567' order by stream_version`.execute(database.db)
  t.same(events.rows.map((r) => r.type), ['TokenImported', 'TokenAssigned'])
  t.same(events.rows[0]!.metadata.actor, { type: 'admin', id: `api-key:${admin.id}` }, 'the key is the actor')
  t.notOk(logs.join('').includes(SEED), 'no seed in the logs')
  t.notOk(logs.join('').includes(admin.key), 'no API key in the logs')
})

t.test('no key, a wrong key, a revoked-looking key and the wrong role are refused, and nothing is written', async (t) => {
  const before = (await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n
  const body = [HEADER, `,9999999,${SEED},30,,`].join('\n')
  const none = await post(body, { authorization: '' })
  t.equal(none.statusCode, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer')
  t.equal((await post(body, { authorization: `Bearer ${admin.key.slice(0, -2)}xx` })).statusCode, 401)
  t.equal((await post(body, { authorization: 'Bearer tsk_000000000000_' + 'A'.repeat(43) })).statusCode, 401)
  const wrongRole = await post(body, { authorization: `Bearer ${auditor.key}` })
  t.equal(wrongRole.statusCode, 403)
  t.match(wrongRole.json().message, /admin role/)
  t.equal((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n, before)
})

t.test('bad requests get a clear 4xx', async (t) => {
  const wrongHeader = await post('serial,secret\n1,2\n')
  t.equal(wrongHeader.statusCode, 400)
  t.match(wrongHeader.json().message, /must start with the header line/)
  const wrongFormat = await post(HEADER, {}, '?format=xml')
  t.equal(wrongFormat.statusCode, 400)
  t.match(wrongFormat.json().message, /format must be entra, oath or pskc, not xml/)
  const json = await app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: { a: 1 }, headers: { authorization: `Bearer ${admin.key}` } })
  t.equal(json.statusCode, 415)
})

t.test('tessera api-keys create prints a working key once', async (t) => {
  const run = await tessera(['api-keys', 'create', '--role', 'admin', '--name', 'ci'], { DATABASE_URL: database.url })
  t.equal(run.code, 0, run.stderr)
  const key = run.stdout.trim()
  t.match(key, /^tsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/)
  t.match(run.stderr, /shown once/)
  const res = await post([HEADER, `,5555555,${SEED},30,,`].join('\n'), { authorization: `Bearer ${key}` })
  t.equal(res.statusCode, 200)
  const stored = await sql<{ h: Buffer }>`select secret_hash as h from api_keys`.execute(database.db)
  t.notOk(stored.rows.some((r) => r.h.toString().includes(key.split('_')[2]!)), 'only a hash is stored')
  const bad = await tessera(['api-keys', 'create', '--role', 'root'], { DATABASE_URL: database.url })
  t.equal(bad.code, 2)
})

t.test('tessera api-keys revoke: the key is refused from the next request', async (t) => {
  const key = await createApiKey(app.commands, { role: 'admin', name: 'leaving' }, metadata())
  t.equal((await post([HEADER, `,6666661,${SEED},30,,`].join('\n'), { authorization: `Bearer ${key.key}` })).statusCode, 200)
  const run = await tessera(['api-keys', 'revoke', key.id], { DATABASE_URL: database.url })
  t.equal(run.code, 0, run.stderr)
  t.equal((await post([HEADER, `,6666662,${SEED},30,,`].join('\n'), { authorization: `Bearer ${key.key}` })).statusCode, 401)
  const again = await tessera(['api-keys', 'revoke', key.id], { DATABASE_URL: database.url })
  t.equal(again.code, 1)
  t.match(again.stderr, /already revoked/)
  const events = await sql<{ type: string }>`select type from events where stream_id = ${`api-key-${key.id}`} order by stream_version`.execute(database.db)
  t.same(events.rows.map((r) => r.type), ['ApiKeyCreated', 'ApiKeyRevoked'])
})
