// When everything that signs in as a user last ended (a password reset, a disabled or deleted account):
// sign_in_ends, written by commands/users.ts endSignIns in the change's own transaction. With REDIS_URL the
// provider keeps sessions, grants and access tokens in Redis (redis-adapter.ts), where that transaction and
// the CLI cannot reach: an artifact made at or before this time is refused there when it is read.
// Each process keeps what it read SIGN_IN_END_TTL_MS; an end recorded on this process applies here at once
// (signInsEnded, called once the change is committed), one recorded elsewhere (another process, the CLI)
// within SIGN_IN_END_TTL_MS. No import of oidc-provider here: the CLI ends sign-ins and must not load it.
import { sql } from 'kysely'
import { executePrepared } from '../db/prepared.js'
import type { Executor } from '../read-models/database.js'

export interface SignInEndsTable {
  user_id: string
  ended_at: Date
}

/** How long a process keeps a user's last end before reading it again: as long as it keeps their account. */
export const SIGN_IN_END_TTL_MS = 2000
/** Beyond this many users the cache starts afresh (a bound, not an expected size). */
const MAX_KEPT = 10_000

type Kept = Map<string, { endedAt: number; until: number }>
const caches = new Set<Kept>()
/** Counts signInsEnded calls: a read that overlapped one is not kept (it may predate the end). */
let generation = 0

/**
 * Records that everything signing in as the user ends now: the database's clock (one clock for every process
 * and the CLI, whatever machine they run on; not the command clock), which the processes stamping what they make
 * must agree with (NTP). In the caller's transaction.
 */
export async function recordSignInEnd(trx: Executor, userId: string): Promise<void> {
  await sql`insert into sign_in_ends (user_id, ended_at) values (${userId}, clock_timestamp())
            on conflict (user_id) do update set ended_at = greatest(sign_in_ends.ended_at, excluded.ended_at)`.execute(trx)
}

/** The user's sign-ins ended (committed): this process reads their end again at once. */
export function signInsEnded(userId: string): void {
  generation++
  for (const kept of caches) kept.delete(userId)
}

/** A reader of users' last ends (ms since the epoch, 0 for never), kept per process. */
export function signInEnds(db: Executor) {
  const kept: Kept = new Map()
  caches.add(kept)
  return {
    async of(userId: string): Promise<number> {
      const now = Date.now()
      const hit = kept.get(userId)
      if (hit && hit.until > now) return hit.endedAt
      const seen = generation
      const row = (await executePrepared(db, sql<{ ended_at: Date }>`select ended_at from sign_in_ends where user_id = ${userId}`)).rows[0]
      const endedAt = row ? row.ended_at.getTime() : 0
      if (kept.size >= MAX_KEPT) kept.clear()
      if (seen === generation) kept.set(userId, { endedAt, until: now + SIGN_IN_END_TTL_MS })
      return endedAt
    },
  }
}
