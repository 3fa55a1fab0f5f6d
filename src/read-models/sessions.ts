// The gateway's sessions, recorded server-side: the cookie carries the session's id, and a session is
// live only while its row says so. A sign-out ends it for every copy of the cookie on every process,
// and a session ends SESSION_HOURS after the password was entered, however active it is.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { executePrepared } from '../db/prepared.js'
import type { Executor } from './database.js'

export interface GatewaySessionsTable {
  id: string
  user_id: string
  started_at: Date
  expires_at: Date
  ended_at: Date | null
  /** The password it was started with (its user_credentials.updated_at); null for an upstream provider's sign-in. */
  password_at: Date | null
}

export async function startGatewaySession(db: Executor, userId: string, now: Date, lifetimeMs: number, passwordAt: Date | null = null): Promise<string> {
  const id = randomBytes(18).toString('base64url')
  await sql`insert into gateway_sessions (id, user_id, started_at, expires_at, password_at)
    values (${id}, ${userId}, ${now}, ${new Date(now.getTime() + lifetimeMs)}, ${passwordAt})`.execute(db)
  return id
}

/**
 * True while the session has not been ended, its absolute lifetime has not run out, its account is enabled
 * and not deleted, and (started by a password) that password is still the account's: a reset or a change
 * ends it however the sign-in and the reset interleaved.
 */
export async function gatewaySessionLive(db: Executor, id: string, userId: string, now: Date): Promise<boolean> {
  const result = await executePrepared(db, sql<{ live: boolean }>`select true as live from gateway_sessions s join users u on u.id = s.user_id
    left join user_credentials c on c.user_id = s.user_id
    where s.id = ${id} and s.user_id = ${userId} and s.ended_at is null and s.expires_at > ${now} and not u.disabled and not u.deleted
      and (s.password_at is null or s.password_at = date_trunc('milliseconds', c.updated_at))`)
  return result.rows.length > 0
}

export async function endGatewaySession(db: Executor, id: string, now: Date): Promise<void> {
  await sql`update gateway_sessions set ended_at = ${now} where id = ${id} and ended_at is null`.execute(db)
}

/** Sessions that ended or expired a day ago are of no more use. */
export async function pruneGatewaySessions(db: Executor, now: Date): Promise<void> {
  const before = new Date(now.getTime() - 86_400_000)
  await sql`delete from gateway_sessions where expires_at < ${before} or ended_at < ${before}`.execute(db)
}
