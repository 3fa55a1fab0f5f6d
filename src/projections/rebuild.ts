// Rebuilds a projection from the whole log into fresh tables, then swaps them in.
// 1. Fresh tables in schema tessera_rebuild, shaped LIKE the live ones (columns, keys, indexes).
// 2. Replay every event into them, page by page, without blocking writers.
// 3. One short transaction: lock the live tables (and the catch-up checkpoint), apply the events that
//    arrived meanwhile, drop the live tables, move the fresh ones in, keep the index names.
//    Writers that waited on the lock resolve the table name again and write into the new table.
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database, Db } from '../read-models/database.js'
import type { PostgresEventStore } from '../event-store/postgres.js'
import { START, type GlobalPosition, type RecordedEvent } from '../event-store/types.js'
import { relevant, type Projection } from './types.js'

const SCHEMA = 'tessera_rebuild'

export interface RebuildResult {
  projection: string
  events: number
  tables: readonly string[]
}

async function indexes(trx: Kysely<any>, schema: string, table: string): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; def: string }>`
    select c.relname as name, pg_get_indexdef(i.indexrelid) as def
    from pg_index i join pg_class c on c.oid = i.indexrelid
    join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = ${schema} and t.relname = ${table}`.execute(trx)
  // Same definition whatever the index's name and schema: "... INDEX <name> ON <schema>.<table> USING ..."
  return new Map(rows.rows.map((r) => [r.def.replace(/INDEX \S+ ON \S+ /, 'INDEX ON '), r.name]))
}

async function applyPage(db: Kysely<any>, projection: Projection, events: readonly RecordedEvent[]): Promise<void> {
  const mine = relevant(projection, events)
  if (mine.length > 0) await projection.apply(db, mine)
}

export async function rebuildProjection(
  db: Db,
  store: PostgresEventStore,
  projection: Projection,
  options: { pageSize?: number } = {},
): Promise<RebuildResult> {
  const pageSize = options.pageSize ?? 5000
  const fresh = db.withSchema(SCHEMA) as unknown as Kysely<any>
  await sql`create schema if not exists ${sql.id(SCHEMA)}`.execute(db)
  for (const table of projection.tables) {
    await sql`drop table if exists ${sql.id(SCHEMA, table)}`.execute(db)
    await sql`create table ${sql.id(SCHEMA, table)} (like ${sql.id('public', table)} including all)`.execute(db)
  }

  let at: GlobalPosition = START
  let count = 0
  for await (const page of store.readAllPages(START, pageSize)) {
    await applyPage(fresh, projection, page)
    count += page.length
    const last = page[page.length - 1]!
    at = { txId: last.txId, position: last.position }
  }

  await db.transaction().execute(async (trx: Transaction<Database>) => {
    // Locks in the order the catch-up runner takes them (checkpoint row, then tables): no deadlock.
    const checkpoint = `projection:${projection.name}`
    if (projection.kind === 'catch-up') {
      await sql`insert into subscription_checkpoints (name, tx_id, position) values (${checkpoint}, '0', 0)
                on conflict (name) do nothing`.execute(trx)
      await sql`select 1 from subscription_checkpoints where name = ${checkpoint} for update`.execute(trx)
    }
    const tables = projection.tables.map((t) => sql.id('public', t))
    await sql`lock table ${sql.join(tables)} in access exclusive mode`.execute(trx)
    // The tail: for an inline projection every committed event (writers of the live table have ended,
    // the lock keeps the rest out); for a catch-up one, what the subscription would read now.
    for (;;) {
      const page = projection.kind === 'catch-up'
        ? (await store.readAll(at, pageSize, trx)).events
        : (await sql<any>`select position, tx_id, stream_id, stream_version, type, data, metadata, recorded_at, hash
             from events where (tx_id, position) > (${at.txId}::xid8, ${at.position}::bigint)
             order by tx_id, position limit ${pageSize}`.execute(trx)).rows.map((r: any): RecordedEvent => ({
              position: Number(r.position), txId: r.tx_id, streamId: r.stream_id, streamVersion: r.stream_version,
              type: r.type, data: r.data, metadata: r.metadata, recordedAt: r.recorded_at, hash: r.hash,
            }))
      if (page.length === 0) break
      await applyPage(trx.withSchema(SCHEMA) as unknown as Kysely<any>, projection, page)
      count += page.length
      const last = page[page.length - 1]!
      at = { txId: last.txId, position: last.position }
      if (page.length < pageSize) break
    }
    for (const table of projection.tables) {
      const live = await indexes(trx, 'public', table)
      const rebuilt = await indexes(trx, SCHEMA, table)
      await sql`drop table ${sql.id('public', table)}`.execute(trx)
      await sql`alter table ${sql.id(SCHEMA, table)} set schema public`.execute(trx)
      for (const [def, name] of rebuilt) {
        const wanted = live.get(def)
        if (wanted && wanted !== name) await sql`alter index ${sql.id('public', name)} rename to ${sql.id(wanted)}`.execute(trx)
      }
    }
    if (projection.kind === 'catch-up') {
      await sql`insert into subscription_checkpoints (name, tx_id, position) values (${checkpoint}, ${at.txId}::xid8, ${at.position})
                on conflict (name) do update set tx_id = excluded.tx_id, position = excluded.position, updated_at = now()`.execute(trx)
    }
  })
  return { projection: projection.name, events: count, tables: projection.tables }
}
