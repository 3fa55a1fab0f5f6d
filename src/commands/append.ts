// The write path shared by every command: append with the expected version and apply the inline
// projections in the same transaction, so a crash leaves the whole change or none of it.
import { sql } from 'kysely'
import type { Db, Executor } from '../read-models/database.js'
import type { PostgresEventStore, StreamWrite } from '../event-store/postgres.js'
import type { AppendResult, EventMetadata, ExpectedVersion, NewEvent } from '../event-store/types.js'
import { inlineProjections } from '../projections/index.js'
import { relevant, type Projection } from '../projections/types.js'

export interface WriteContext {
  db: Db
  store: PostgresEventStore
  inline?: readonly Projection[]
  /** `db` is the caller's open transaction: join it, and let the caller signal the commit. */
  deferCommit?: boolean
}

export async function appendWithProjections(
  ctx: WriteContext,
  streamId: string,
  expected: ExpectedVersion,
  events: readonly NewEvent[],
  metadata: EventMetadata,
): Promise<AppendResult> {
  const [result] = await appendStreamsWithProjections(ctx, [{ streamId, expected, events }], metadata)
  return result!
}

/** Several streams in one statement and one transaction (an import batch). */
export async function appendStreamsWithProjections(
  ctx: WriteContext,
  writes: readonly StreamWrite[],
  metadata: EventMetadata,
): Promise<AppendResult[]> {
  const inline = ctx.inline ?? inlineProjections
  // Token rows are locked before their events go in, in serial order: the verification's one statement
  // (token-writer.ts) updates the row before it inserts the event, and an append that took the event's
  // key first and the row after could deadlock with it.
  const serials = writes.filter((w) => w.expected !== 'no-stream' && w.streamId.startsWith('token-')).map((w) => w.streamId.slice('token-'.length)).sort()
  const work = async (trx: Executor) => {
    if (serials.length > 0) await sql`select 1 from tokens where serial = any(${serials}::text[]) order by serial for update`.execute(trx)
    const appended = await ctx.store.appendStreams(writes, metadata, trx)
    const all = appended.flatMap((a) => a.events)
    for (const projection of inline) {
      const mine = relevant(projection, all)
      if (mine.length > 0) await projection.apply(trx, mine)
    }
    return appended
  }
  if (ctx.deferCommit) return work(ctx.db)
  const result = await ctx.db.transaction().execute(work)
  ctx.store.committed()
  return result
}
