// The users read model and credentials.
import { sql } from 'kysely'
import { executePrepared } from '../db/prepared.js'
import type { Executor } from './database.js'

export interface UsersTable {
  id: string
  upn: string
  display_name: string
  roles: string[]
  groups: string[]
  created_at: Date
  had_method: boolean
  default_method: string | null
  disabled: boolean
  sign_in_failures: number
  last_sign_in_failure_at: Date | null
  /** Deleted by an admin: kept for the audit, found by no sign-in or admin lookup; its name is free again. */
  deleted: boolean
  version: number
}

export interface UserCredentialsTable {
  user_id: string
  password_hash: string
  updated_at: Date
  /** A temporary password set by an admin: it signs in only to choose a new one. */
  must_change: boolean
  /** When a temporary password stops working (null: a password the user chose, which does not expire). */
  expires_at: Date | null
}

export type UserWithCredentials = UsersTable & { password_hash: string | null; must_change: boolean | null; password_expires_at: Date | null; password_updated_at: Date | null }

/** A live (not deleted) user by principal name, with their credentials. */
export async function findUserByUpn(db: Executor, upn: string): Promise<UserWithCredentials | undefined> {
  return db
    .selectFrom('users')
    .leftJoin('user_credentials', 'user_credentials.user_id', 'users.id')
    .selectAll('users')
    .select(['user_credentials.password_hash', 'user_credentials.must_change', 'user_credentials.expires_at as password_expires_at',
      'user_credentials.updated_at as password_updated_at'])
    .where((eb) => eb(eb.fn('lower', ['users.upn']), '=', upn.trim().toLowerCase()))
    .where('users.deleted', '=', false)
    .executeTakeFirst()
}

/**
 * For the audit: the user a principal name names, the live one or, when none, the one deleted last (a name
 * is free again after its user is deleted, so a deleted account's history stays reachable by name).
 */
export async function findUserForAudit(db: Executor, upn: string): Promise<UsersTable | undefined> {
  return db.selectFrom('users').select(USER_COLUMNS)
    .where((eb) => eb(eb.fn('lower', ['upn']), '=', upn.trim().toLowerCase()))
    .orderBy('deleted').orderBy('created_at', 'desc').limit(1)
    .executeTakeFirst() as Promise<UsersTable | undefined>
}

/** The columns of users, listed: findUser is a prepared statement, which must not select `*` (db/prepared.ts). */
const USER_COLUMNS = ['id', 'upn', 'display_name', 'roles', 'groups', 'created_at', 'had_method', 'default_method', 'disabled', 'sign_in_failures', 'last_sign_in_failure_at', 'deleted', 'version'] as const satisfies readonly (keyof UsersTable)[]
// A column added to UsersTable but not listed above fails to compile here.
const everyColumn: Record<Exclude<keyof UsersTable, (typeof USER_COLUMNS)[number]>, never> = {}
void everyColumn

/** A live user by id; the provider asks for the signed-in account twice a flow, so it is a prepared statement. */
export async function findUser(db: Executor, id: string): Promise<UsersTable | undefined> {
  return (await executePrepared(db, db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id).where('deleted', '=', false))).rows[0]
}

export async function usersByUpn(db: Executor, upns: readonly string[]): Promise<Map<string, string>> {
  if (upns.length === 0) return new Map()
  const rows = await db.selectFrom('users').select(['id', 'upn']).where('deleted', '=', false)
    .where((eb) => eb(eb.fn('lower', ['upn']), 'in', upns.map((u) => u.toLowerCase()))).execute()
  return new Map(rows.map((r) => [r.upn.toLowerCase(), r.id]))
}

/**
 * User principal names by user id, for the ids given (unknown ids are left out); a deleted account's says so,
 * since its name may belong to someone else now.
 */
export async function upnsOf(db: Executor, ids: Iterable<string>): Promise<Map<string, string>> {
  const list = [...new Set(ids)]
  if (list.length === 0) return new Map()
  const rows = await db.selectFrom('users').select(['id', 'upn', 'deleted']).where('id', 'in', list).execute()
  return new Map(rows.map((u) => [u.id, u.deleted ? `${u.upn} (deleted)` : u.upn]))
}

export interface MethodChange {
  type: 'SignInMethodAdded' | 'SignInMethodRemoved'
  serial: string
  by: string
  at: Date
  sourceIp: string | null
}

/**
 * The sign-in methods added to or removed from the account since its last sign-in with a password or an
 * upstream provider (the newest `limit`, oldest first): what the user is told when they sign in next.
 */
export async function methodChangesSinceLastSignIn(db: Executor, userId: string, limit = 5): Promise<MethodChange[]> {
  const stream = `user-${userId}`
  const rows = await sql<{ type: MethodChange['type']; serial: string; by: string; at: Date; source_ip: string | null }>`
    select type, data->>'serial' as serial, data->>'by' as by, recorded_at as at, metadata->>'sourceIp' as source_ip
    from events
    where stream_id = ${stream} and type in ('SignInMethodAdded', 'SignInMethodRemoved') and data->>'by' <> 'backfill'
      and stream_version > coalesce((select max(stream_version) from events
        where stream_id = ${stream} and type = 'UserSignedIn' and data->>'method' in ('pwd', 'fed')), 0)
    order by stream_version desc limit ${limit}`.execute(db)
  return rows.rows.reverse().map((r) => ({ type: r.type, serial: r.serial, by: r.by, at: r.at, sourceIp: r.source_ip }))
}

/**
 * The changes to the account's methods since `since`, newest first: always listed on Security info, so that
 * someone who signs in again after a change cannot make it disappear from the user's view.
 */
export async function recentMethodChanges(db: Executor, userId: string, since: Date, limit = 10): Promise<MethodChange[]> {
  const rows = await sql<{ type: MethodChange['type']; serial: string; by: string; at: Date; source_ip: string | null }>`
    select type, data->>'serial' as serial, data->>'by' as by, recorded_at as at, metadata->>'sourceIp' as source_ip
    from events
    where stream_id = ${`user-${userId}`} and type in ('SignInMethodAdded', 'SignInMethodRemoved') and data->>'by' <> 'backfill'
      and recorded_at >= ${since}
    order by stream_version desc limit ${limit}`.execute(db)
  return rows.rows.map((r) => ({ type: r.type, serial: r.serial, by: r.by, at: r.at, sourceIp: r.source_ip }))
}

/**
 * A stream named the way a person would: a user's principal name (or user-<upn>) stands for their stream
 * user-<id>; anything else is taken as a stream id. An unknown principal name stays as given (no events).
 */
export async function resolveStream(db: Executor, value: string): Promise<string> {
  const upn = value.startsWith('user-') && value.includes('@') ? value.slice('user-'.length) : value.includes('@') ? value : null
  if (!upn) return value
  const user = await findUserForAudit(db, upn)
  return user ? `user-${user.id}` : value
}

/** Admin list: users whose principal name or display name contains `q`, by principal name, a page at a time. */
export async function listUsers(db: Executor, q: { q?: string; after?: string; limit: number }): Promise<{ users: UsersTable[]; next: string | null }> {
  let query = db.selectFrom('users').select(USER_COLUMNS).where('deleted', '=', false).orderBy('upn').limit(q.limit)
  if (q.q) {
    const like = `%${q.q.toLowerCase().replace(/[%_\\]/g, '\\$&')}%`
    query = query.where((eb) => eb.or([eb(eb.fn('lower', ['upn']), 'like', like), eb(eb.fn('lower', ['display_name']), 'like', like)]))
  }
  if (q.after) query = query.where('upn', '>', q.after)
  const users = await query.execute() as UsersTable[]
  return { users, next: users.length === q.limit ? users[users.length - 1]!.upn : null }
}
