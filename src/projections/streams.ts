// Inline read model: every stream with its category, version and last event.
// It lets `audit verify` see a stream whose last events were removed.
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'
import type { Projection } from './types.js'

export function categoryOf(streamId: string): string {
  const dash = streamId.indexOf('-')
  return dash > 0 ? streamId.slice(0, dash) : streamId
}

export const streamsProjection: Projection = {
  name: 'streams',
  kind: 'inline',
  tables: ['streams'],
  handles: '*',
  async apply(db: Kysely<any>, events: readonly RecordedEvent[]) {
    // One row per stream: its latest event in this batch.
    const latest = new Map<string, RecordedEvent>()
    const first = new Map<string, RecordedEvent>()
    for (const e of events) {
      if (!first.has(e.streamId) || first.get(e.streamId)!.streamVersion > e.streamVersion) first.set(e.streamId, e)
      if (!latest.has(e.streamId) || latest.get(e.streamId)!.streamVersion < e.streamVersion) latest.set(e.streamId, e)
    }
    const rows = [...latest.values()].map((e) => ({
      stream_id: e.streamId,
      category: categoryOf(e.streamId),
      version: e.streamVersion,
      last_type: e.type,
      created_at: first.get(e.streamId)!.recordedAt,
      updated_at: e.recordedAt,
    }))
    if (rows.length === 0) return
    await db
      .insertInto('streams')
      .values(rows)
      .onConflict((oc) =>
        oc.column('stream_id').doUpdateSet({
          version: sql`excluded.version`,
          last_type: sql`excluded.last_type`,
          updated_at: sql`excluded.updated_at`,
        }).where('streams.version', '<', sql<number>`excluded.version`),
      )
      .execute()
  },
}
