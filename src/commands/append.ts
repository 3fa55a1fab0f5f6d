// The write path shared by every command: append with the expected version and apply the inline
// projections in the same transaction, so a crash leaves the whole change or none of it.
import type { Db } from '../read-models/database.js'
import type { PostgresEventStore } from '../event-store/postgres.js'
import type { AppendResult, EventMetadata, ExpectedVersion, NewEvent } from '../event-store/types.js'
import { inlineProjections } from '../projections/index.js'
import { relevant, type Projection } from '../projections/types.js'

export interface WriteContext {
  db: Db
  store: PostgresEventStore
  inline?: readonly Projection[]
}

export async function appendWithProjections(
  ctx: WriteContext,
  streamId: string,
  expected: ExpectedVersion,
  events: readonly NewEvent[],
  metadata: EventMetadata,
): Promise<AppendResult> {
  const inline = ctx.inline ?? inlineProjections
  const result = await ctx.db.transaction().execute(async (trx) => {
    const appended = await ctx.store.append(streamId, expected, events, metadata, trx)
    for (const projection of inline) {
      const mine = relevant(projection, appended.events)
      if (mine.length > 0) await projection.apply(trx, mine)
    }
    return appended
  })
  ctx.store.committed()
  return result
}
