// Catch-up read model: one row per event, searchable by stream, actor, type and time.
// Keyed by position, so applying an event twice changes nothing.
import type { Kysely } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'
import type { Projection } from './types.js'

/** The user an event is about: the one its data names, or the user whose stream it is. */
export function subjectUser(e: Pick<RecordedEvent, 'streamId' | 'data'>): string | null {
  if (typeof e.data.userId === 'string') return e.data.userId
  const target = e.data.target as { kind?: string; id?: string } | undefined
  if (target?.kind === 'user' && typeof target.id === 'string') return target.id
  if (e.streamId.startsWith('user-')) return e.streamId.slice('user-'.length)
  return null
}

export const auditIndexProjection: Projection = {
  name: 'audit_index',
  kind: 'catch-up',
  tables: ['audit_index'],
  handles: '*',
  async apply(db: Kysely<any>, events: readonly RecordedEvent[]) {
    if (events.length === 0) return
    await db
      .insertInto('audit_index')
      .values(events.map((e) => ({
        position: e.position,
        tx_id: e.txId,
        stream_id: e.streamId,
        stream_version: e.streamVersion,
        type: e.type,
        actor_type: e.metadata.actor.type,
        actor_id: e.metadata.actor.id,
        correlation_id: e.metadata.correlationId,
        user_id: subjectUser(e),
        relying_application: e.metadata.relyingApplication ?? (typeof e.data.relyingApplication === 'string' ? e.data.relyingApplication : null),
        recorded_at: e.recordedAt,
      })))
      .onConflict((oc) => oc.column('position').doNothing())
      .execute()
  },
}
