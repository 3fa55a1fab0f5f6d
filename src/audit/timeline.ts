// Timelines for auditors, read from the audit index (a catch-up projection) and paged by position:
// one token, one user, one relying application, or everything in a time range, by type and actor.
import { sql } from 'kysely'
import type { EventMetadata } from '../event-store/types.js'
import type { Executor } from '../read-models/database.js'
import { namedUser } from '../projections/audit-index.js'
import { upnsOf } from '../read-models/users.js'
import { describe } from './describe.js'

export interface TimelineFilter {
  streamId?: string
  userId?: string
  relyingApplication?: string
  types?: string[]
  actorId?: string
  from?: Date
  to?: Date
}

export interface TimelineEntry {
  position: number
  streamId: string
  streamVersion: number
  type: string
  recordedAt: Date
  actor: EventMetadata['actor']
  /** The actor as a person reads it: a user's principal name, else the actor's id. */
  actorName: string
  sourceIp: string | null
  userAgent: string | null
  correlationId: string
  relyingApplication: string | null
  data: Record<string, unknown>
  line: string
}

export const MAX_PAGE = 500

function conditions(filter: TimelineFilter) {
  const where = [sql`true`]
  if (filter.streamId) where.push(sql`a.stream_id = ${filter.streamId}`)
  if (filter.userId) where.push(sql`a.user_id = ${filter.userId}`)
  if (filter.relyingApplication) where.push(sql`a.relying_application = ${filter.relyingApplication}`)
  if (filter.types?.length) where.push(sql`a.type = any(${filter.types}::text[])`)
  if (filter.actorId) where.push(sql`a.actor_id = ${filter.actorId}`)
  if (filter.from) where.push(sql`a.recorded_at >= ${filter.from}`)
  if (filter.to) where.push(sql`a.recorded_at < ${filter.to}`)
  return where
}

/** How many events the filter matches (the pages show it). */
export async function timelineTotal(db: Executor, filter: TimelineFilter): Promise<number> {
  const row = await sql<{ n: string }>`select count(*) as n from audit_index a where ${sql.join(conditions(filter), sql` and `)}`.execute(db)
  return Number(row.rows[0]!.n)
}

/**
 * A page of the timeline, newest first: the events before `before` (the newest when it is not given), or,
 * for the page of newer ones, the events after `after`, still shown newest first. `older` and `newer` are
 * the cursors of the neighbouring pages, null where there is none.
 */
export async function timelineNewestFirst(db: Executor, filter: TimelineFilter, page: { before?: number; after?: number; limit?: number } = {}):
  Promise<{ entries: TimelineEntry[]; older: number | null; newer: number | null }> {
  const limit = Math.min(Math.max(page.limit ?? 100, 1), MAX_PAGE)
  if (page.after !== undefined) {
    const { entries } = await timeline(db, filter, { after: page.after, limit: limit + 1 })
    const shown = entries.slice(0, limit).reverse()
    return { entries: shown, newer: entries.length > limit ? shown[0]!.position : null, older: shown.length > 0 ? shown.at(-1)!.position : null }
  }
  const where = conditions(filter)
  if (page.before !== undefined) where.push(sql`a.position < ${page.before}`)
  const entries = await entriesWhere(db, where, sql`order by a.position desc`, limit + 1)
  const shown = entries.slice(0, limit)
  return { entries: shown, older: entries.length > limit ? shown.at(-1)!.position : null, newer: page.before !== undefined && shown.length > 0 ? shown[0]!.position : null }
}

export async function timeline(db: Executor, filter: TimelineFilter, page: { after?: number; limit?: number } = {}): Promise<{ entries: TimelineEntry[]; next: number | null }> {
  const limit = Math.min(Math.max(page.limit ?? 100, 1), MAX_PAGE + 1)
  const where = [...conditions(filter), sql`a.position > ${page.after ?? 0}`]
  const entries = await entriesWhere(db, where, sql`order by a.position`, limit)
  return { entries, next: entries.length === limit ? entries[entries.length - 1]!.position : null }
}

async function entriesWhere(db: Executor, where: ReturnType<typeof conditions>, order: ReturnType<typeof sql>, limit: number): Promise<TimelineEntry[]> {
  const rows = await sql<{ position: string; stream_id: string; stream_version: number; type: string; recorded_at: Date; data: Record<string, unknown>; metadata: EventMetadata }>`
    select a.position, a.stream_id, a.stream_version, a.type, a.recorded_at, e.data, e.metadata
    from audit_index a join events e on e.position = a.position
    where ${sql.join(where, sql` and `)}
    ${order} limit ${limit}`.execute(db)
  const userIds = new Set<string>()
  for (const r of rows.rows) {
    if (r.metadata.actor.type === 'user') userIds.add(r.metadata.actor.id)
    const subject = namedUser({ streamId: r.stream_id, data: r.data })
    if (subject) userIds.add(subject)
  }
  const names = await upnsOf(db, userIds)
  const entries = rows.rows.map((r) => ({
    position: Number(r.position), streamId: r.stream_id, streamVersion: r.stream_version, type: r.type, recordedAt: r.recorded_at,
    actor: r.metadata.actor, actorName: (r.metadata.actor.type === 'user' ? names.get(r.metadata.actor.id) : undefined) ?? r.metadata.actor.id,
    sourceIp: r.metadata.sourceIp, userAgent: r.metadata.userAgent, correlationId: r.metadata.correlationId,
    relyingApplication: r.metadata.relyingApplication ?? (typeof r.data.relyingApplication === 'string' ? r.data.relyingApplication : null),
    data: r.data,
    line: describe({ type: r.type, streamId: r.stream_id, data: r.data, metadata: r.metadata }, names),
  }))
  return entries
}
