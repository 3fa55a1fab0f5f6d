// The users read model and credentials.
import { executePrepared } from '../db/prepared.js'
import type { Executor } from './database.js'

export interface UsersTable {
  id: string
  upn: string
  display_name: string
  roles: string[]
  groups: string[]
  created_at: Date
  version: number
}

export interface UserCredentialsTable {
  user_id: string
  password_hash: string
  updated_at: Date
}

export async function findUserByUpn(db: Executor, upn: string): Promise<(UsersTable & { password_hash: string | null }) | undefined> {
  return db
    .selectFrom('users')
    .leftJoin('user_credentials', 'user_credentials.user_id', 'users.id')
    .selectAll('users')
    .select('user_credentials.password_hash')
    .where((eb) => eb(eb.fn('lower', ['users.upn']), '=', upn.trim().toLowerCase()))
    .executeTakeFirst()
}

/** The columns of users, listed: findUser is a prepared statement, which must not select `*` (db/prepared.ts). */
const USER_COLUMNS = ['id', 'upn', 'display_name', 'roles', 'groups', 'created_at', 'version'] as const satisfies readonly (keyof UsersTable)[]
// A column added to UsersTable but not listed above fails to compile here.
const everyColumn: Record<Exclude<keyof UsersTable, (typeof USER_COLUMNS)[number]>, never> = {}
void everyColumn

/** A user by id; the provider asks for the signed-in account twice a flow, so it is a prepared statement. */
export async function findUser(db: Executor, id: string): Promise<UsersTable | undefined> {
  return (await executePrepared(db, db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id))).rows[0]
}

export async function usersByUpn(db: Executor, upns: readonly string[]): Promise<Map<string, string>> {
  if (upns.length === 0) return new Map()
  const rows = await db.selectFrom('users').select(['id', 'upn'])
    .where((eb) => eb(eb.fn('lower', ['upn']), 'in', upns.map((u) => u.toLowerCase()))).execute()
  return new Map(rows.map((r) => [r.upn.toLowerCase(), r.id]))
}

/** User principal names by user id, for the ids given (unknown ids are left out). */
export async function upnsOf(db: Executor, ids: Iterable<string>): Promise<Map<string, string>> {
  const list = [...new Set(ids)]
  if (list.length === 0) return new Map()
  const rows = await db.selectFrom('users').select(['id', 'upn']).where('id', 'in', list).execute()
  return new Map(rows.map((u) => [u.id, u.upn]))
}
