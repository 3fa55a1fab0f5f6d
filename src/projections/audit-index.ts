// Catch-up read model: one row per event, searchable by stream, actor, user, relying application, type
// and time. Keyed by position, so applying an event twice changes nothing.
import { sql, type Kysely } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'
import type { Projection } from './types.js'

/** The user an event names: in its data, as its target, or as the user whose stream it is. */
export function namedUser(e: Pick<RecordedEvent, 'streamId' | 'data'>): string | null {
  if (typeof e.data.userId === 'string') return e.data.userId
  const target = e.data.target as { kind?: string; id?: string } | undefined
  if (target?.kind === 'user' && typeof target.id === 'string') return target.id
  if (e.streamId.startsWith('user-')) return e.streamId.slice('user-'.length)
  return null
}

const isToken = (streamId: string) => streamId.startsWith('token-')

/**
 * Each event's user: the one it names, or, for an event of a token that names nobody (renamed, locked,
 * disabled, revoked ...), the token's owner then, so that a user's timeline holds everything done to
 * their tokens. A token's owner after an event is the user of that event's row, except after
 * TokenUnassigned (which names the user who no longer owns it): the owner before a batch comes from the
 * stream's last row in the index, one indexed lookup per token stream that needs it.
 */
async function subjects(db: Kysely<any>, events: readonly RecordedEvent[]): Promise<(string | null)[]> {
  const named = events.map(namedUser)
  const owners = new Map<string, string | null>()
  const unknown = [...new Set(events.filter((e, i) => named[i] === null && isToken(e.streamId)).map((e) => e.streamId))]
  if (unknown.length > 0) {
    // Each stream's last row before its first event of this batch (a batch applied again finds its own rows).
    const firsts = unknown.map((id) => events.find((e) => e.streamId === id)!.position)
    const { rows } = await sql<{ stream_id: string; type: string; user_id: string | null }>`
      select s.stream_id, last.type, last.user_id
      from unnest(${unknown}::text[], ${firsts}::bigint[]) as s(stream_id, first)
      cross join lateral (
        select a.type, a.user_id from audit_index a
        where a.stream_id = s.stream_id and a.position < s.first
        order by a.position desc limit 1
      ) last`.execute(db)
    for (const r of rows) owners.set(r.stream_id, r.type === 'TokenUnassigned' ? null : r.user_id)
  }
  return events.map((e, i) => {
    if (!isToken(e.streamId)) return named[i]!
    const user = named[i] ?? owners.get(e.streamId) ?? null
    owners.set(e.streamId, e.type === 'TokenUnassigned' ? null : user)
    return user
  })
}

export const auditIndexProjection: Projection = {
  name: 'audit_index',
  kind: 'catch-up',
  tables: ['audit_index'],
  handles: '*',
  async apply(db: Kysely<any>, events: readonly RecordedEvent[]) {
    if (events.length === 0) return
    const users = await subjects(db, events)
    await db
      .insertInto('audit_index')
      .values(events.map((e, i) => ({
        position: e.position,
        tx_id: e.txId,
        stream_id: e.streamId,
        stream_version: e.streamVersion,
        type: e.type,
        actor_type: e.metadata.actor.type,
        actor_id: e.metadata.actor.id,
        correlation_id: e.metadata.correlationId,
        user_id: users[i],
        relying_application: e.metadata.relyingApplication ?? (typeof e.data.relyingApplication === 'string' ? e.data.relyingApplication : null),
        recorded_at: e.recordedAt,
      })))
      .onConflict((oc) => oc.column('position').doNothing())
      .execute()
  },
}
