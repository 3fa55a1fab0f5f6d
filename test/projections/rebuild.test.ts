// Rebuilt read models equal the live ones after a mixed workload, even with writers running during
// the rebuild.
import t from 'tap'
import { sql } from 'kysely'
import { appendWithProjections } from '../../src/commands/append.js'
import { allProjections, catchUpProjections } from '../../src/projections/index.js'
import { rebuildProjection } from '../../src/projections/rebuild.js'
import { ProjectionRunner } from '../../src/projections/runner.js'
import type { Db } from '../../src/read-models/database.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t, { poolSize: 12 })
const ctx = { db, store }
const runner = new ProjectionRunner(db, store, catchUpProjections, { pollMs: 20, batchSize: 50 })
await runner.start()
t.teardown(() => runner.stop())

async function snapshot(db: Db): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {}
  for (const p of allProjections) {
    for (const table of p.tables) {
      out[table] = (await sql`select * from ${sql.table(table)} order by 1`.execute(db)).rows
    }
  }
  return out
}

async function indexNames(db: Db): Promise<string[]> {
  return (await sql<{ indexname: string }>`select indexname from pg_indexes where schemaname = 'public' order by 1`.execute(db)).rows.map((r) => r.indexname)
}

let version = new Map<string, number>()
const imported = (serial: string) => ({ type: 'TokenImported', data: {
  serial, kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, counter: null, manufacturer: 'Token2', model: 'C202',
  seedFingerprint: `fp-${serial}`, source: 'entra-csv' } })
const later = (serial: string, n: number) => [
  { type: 'TokenAssigned', data: { serial, userId: `u${n % 5}`, by: 'admin' } },
  { type: 'TokenRenamed', data: { serial, name: `key ${n}` } },
  { type: 'TokenActivationFailed', data: { serial, userId: `u${n % 5}`, reason: 'wrong-code' } },
  { type: 'TokenUnassigned', data: { serial, userId: `u${n % 5}`, by: 'admin' } },
  { type: 'UserNoted', data: { n } },
][n % 5]!

/** Token streams and others, one to three events an append, from four writers at once. */
async function workload(n: number, seed: number): Promise<void> {
  const actors = ['alice', 'bob', 'carol']
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < n; i++) {
      const serial = `${seed}${w}${i % 7}`
      const stream = `token-${serial}`
      const v = version.get(stream) ?? 0
      const count = 1 + ((i + w) % 3)
      const events = Array.from({ length: count }, (_, k) => (v + k === 0 ? imported(serial) : later(serial, i + k + w)))
      await appendWithProjections(ctx, stream, v, events, metadata({ actor: { type: 'admin', id: actors[(i + w) % 3]! }, correlationId: `c-${seed}-${w}-${i}` }))
      version.set(stream, v + count)
    }
  }))
}

async function caughtUp(): Promise<void> {
  await runner.catchUp()
}

t.test('after a mixed workload, every rebuilt read model equals the live one', async (t) => {
  await workload(40, 1)
  await caughtUp()
  const live = await snapshot(db)
  const indexes = await indexNames(db)
  t.ok((live.audit_index as unknown[]).length > 200, 'the workload wrote events')
  t.ok((live.streams as unknown[]).length >= 28)
  for (const projection of allProjections) {
    const result = await rebuildProjection(db, store, projection, { pageSize: 37 })
    t.ok(result.events >= (live.audit_index as unknown[]).length, `${projection.name} replayed every event`)
  }
  t.same(await snapshot(db), live, 'rebuilt tables equal the live ones, row for row')
  t.same(await indexNames(db), indexes, 'the indexes keep their names')
})

t.test('a rebuild while writers and the catch-up runner are busy loses and doubles nothing', async (t) => {
  version = new Map()
  const writers = workload(60, 2)
  await new Promise((r) => setTimeout(r, 30))
  for (const projection of allProjections) await rebuildProjection(db, store, projection, { pageSize: 50 })
  await writers
  await caughtUp()
  const live = await snapshot(db)
  const total = Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n)
  t.equal((live.audit_index as unknown[]).length, total, 'one audit row per event')
  const stats = (live.event_type_stats as { count: string }[]).reduce((sum, r) => sum + Number(r.count), 0)
  t.equal(stats, total, 'every event counted once')
  const streams = await sql<{ ok: boolean }>`
    select bool_and(s.version = e.v) as ok from streams s
    join (select stream_id, max(stream_version) as v from events group by stream_id) e using (stream_id)`.execute(db)
  t.equal(streams.rows[0]!.ok, true, 'every stream at its latest version')
  for (const projection of allProjections) await rebuildProjection(db, store, projection)
  t.same(await snapshot(db), live, 'a second rebuild, at rest, gives the same tables')
})
