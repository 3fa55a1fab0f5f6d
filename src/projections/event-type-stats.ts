// Catch-up read model: how many events of each type, first and last seen. Its checkpoint, written in
// the same transaction, makes each event count once.
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'
import type { Projection } from './types.js'

export const eventTypeStatsProjection: Projection = {
  name: 'event_type_stats',
  kind: 'catch-up',
  tables: ['event_type_stats'],
  handles: '*',
  async apply(db: Kysely<any>, events: readonly RecordedEvent[]) {
    const byType = new Map<string, { count: number; first: Date; last: Date }>()
    for (const e of events) {
      const s = byType.get(e.type)
      if (!s) byType.set(e.type, { count: 1, first: e.recordedAt, last: e.recordedAt })
      else {
        s.count++
        if (e.recordedAt < s.first) s.first = e.recordedAt
        if (e.recordedAt > s.last) s.last = e.recordedAt
      }
    }
    if (byType.size === 0) return
    await db
      .insertInto('event_type_stats')
      .values([...byType].map(([type, s]) => ({ type, count: s.count, first_recorded_at: s.first, last_recorded_at: s.last })))
      .onConflict((oc) =>
        oc.column('type').doUpdateSet({
          count: sql`event_type_stats.count + excluded.count`,
          first_recorded_at: sql`least(event_type_stats.first_recorded_at, excluded.first_recorded_at)`,
          last_recorded_at: sql`greatest(event_type_stats.last_recorded_at, excluded.last_recorded_at)`,
        }),
      )
      .execute()
  },
}
