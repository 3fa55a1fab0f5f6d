// A token's state at an instant (or up to a position), folded from its events, not read from today's
// tables; and the replay of a stream, event by event with the state after each.
import { sql } from 'kysely'
import type { TokenEvent } from '../domain/token/events.js'
import { evolve, initialState, type TokenState } from '../domain/token/state.js'
import type { UserEvent } from '../domain/user/events.js'
import { evolveUser, initialUserState, type UserState } from '../domain/user/state.js'
import type { EventMetadata } from '../event-store/types.js'
import { namedUser } from '../projections/audit-index.js'
import type { Executor } from '../read-models/database.js'
import { upnsOf } from '../read-models/users.js'
import { describe } from './describe.js'

export interface ReplayStep {
  position: number
  streamVersion: number
  type: string
  recordedAt: Date
  actor: EventMetadata['actor']
  data: Record<string, unknown>
  /** The aggregate's state after this event, for token and user streams. */
  state: TokenState | UserState | null
}

export interface ReplayUntil {
  until?: Date
  position?: number
  /** Only the stream's latest events (their states are then not folded from the start: null). */
  latest?: number
}

export async function replayStream(db: Executor, streamId: string, limit: ReplayUntil = {}): Promise<ReplayStep[]> {
  const rows = await sql<{ position: string; stream_version: number; type: string; data: Record<string, unknown>; metadata: EventMetadata; recorded_at: Date }>`
    select position, stream_version, type, data, metadata, recorded_at from events
    where stream_id = ${streamId}
      ${limit.until ? sql`and recorded_at < ${new Date(limit.until.getTime() + 1)}` /* the whole millisecond: times are kept in microseconds */ : sql``}
      ${limit.position !== undefined ? sql`and position <= ${limit.position}` : sql``}
    order by stream_version ${limit.latest ? sql`desc limit ${limit.latest}` : sql``}`.execute(db)
  if (limit.latest) {
    return rows.rows.reverse().map((r) => ({ position: Number(r.position), streamVersion: r.stream_version, type: r.type, recordedAt: r.recorded_at,
      actor: r.metadata.actor, data: r.data, state: null }))
  }
  let token: TokenState | null = streamId.startsWith('token-') ? initialState(streamId.slice('token-'.length)) : null
  let user: UserState | null = streamId.startsWith('user-') ? initialUserState(streamId.slice('user-'.length)) : null
  return rows.rows.map((r) => {
    if (token) token = evolve(token, { type: r.type, data: r.data } as TokenEvent, r.recorded_at)
    if (user) user = evolveUser(user, { type: r.type, data: r.data } as UserEvent, r.recorded_at)
    return { position: Number(r.position), streamVersion: r.stream_version, type: r.type, recordedAt: r.recorded_at, actor: r.metadata.actor,
      data: r.data, state: token ?? user }
  })
}

/** The replay with each event's plain-language line (users named by their user principal names). */
export async function describedReplay(db: Executor, streamId: string, limit: ReplayUntil = {}): Promise<(ReplayStep & { line: string })[]> {
  const steps = await replayStream(db, streamId, limit)
  const ids = steps.flatMap((s) => [s.actor.type === 'user' ? s.actor.id : null, namedUser({ streamId, data: s.data })])
  const names = await upnsOf(db, ids.filter((id): id is string => id !== null))
  return steps.map((s) => ({ ...s, line: describe({ type: s.type, streamId, data: s.data, metadata: { actor: s.actor } }, names) }))
}

/** The token's state as of the instant or position; null when it did not exist yet. */
export async function tokenStateAsOf(db: Executor, serial: string, limit: ReplayUntil): Promise<TokenState | null> {
  const steps = await replayStream(db, `token-${serial}`, limit)
  return (steps[steps.length - 1]?.state as TokenState | undefined) ?? null
}
