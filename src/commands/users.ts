// User commands: register, authenticate.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { DUMMY_HASH, hashPassword, verifyPassword } from '../crypto/password.js'
import { decideUser, InvalidUser, UserAlreadyExists } from '../domain/user/decide.js'
import { ROLES, userStream, type Role } from '../domain/user/events.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import { initialUserState } from '../domain/user/state.js'
import type { EventMetadata } from '../event-store/types.js'
import { findUserByUpn, type UsersTable } from '../read-models/users.js'
import { appendWithProjections } from './append.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'

export const MIN_PASSWORD_LENGTH = 8

export async function registerUser(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  input: { upn: string; displayName: string; password: string },
  meta: EventMetadata,
): Promise<{ userId: string; upn: string }> {
  if (input.password.length < MIN_PASSWORD_LENGTH) throw new InvalidUser(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`)
  const userId = randomUUID()
  const events = decideUser(initialUserState(userId), { type: 'RegisterUser', data: { userId, ...input } })
  const upn = (events[0]!.data as { upn: string }).upn
  if (await findUserByUpn(ctx.db, upn)) throw new UserAlreadyExists(upn)
  const passwordHash = await hashPassword(input.password)
  try {
    await ctx.db.transaction().execute(async (trx) => {
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(userId), 'no-stream', events, meta)
      await sql`insert into user_credentials (user_id, password_hash) values (${userId}, ${passwordHash})`.execute(trx)
    })
  } catch (error) {
    // Two registrations of one name at once: the unique index on users(lower(upn)) keeps one.
    if ((error as { constraint?: string }).constraint === 'users_upn_key') throw new UserAlreadyExists(upn)
    throw error
  }
  ctx.store.committed()
  return { userId, upn }
}

/** The user, or null for an unknown name or a wrong password (the same time and answer for both). */
export async function authenticate(ctx: Pick<CommandContext, 'db'>, upn: string, password: string): Promise<UsersTable | null> {
  const user = await findUserByUpn(ctx.db, upn)
  const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH)
  if (!user || !user.password_hash || !ok) return null
  const { password_hash: _, ...rest } = user
  return rest
}

/** Records a sign-in on the user's stream (method: pwd, otp, ...). */
export async function recordSignIn(ctx: Pick<CommandContext, 'db' | 'store'>, userId: string, method: string, meta: EventMetadata): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await appendWithProjections(ctx, userStream(userId), 'any', [{ type: 'UserSignedIn', data: { userId, method } }], meta)
      return
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

/** Grants a role (admin, auditor) to a user; granting one they have changes nothing. */
export async function grantRole(ctx: Pick<CommandContext, 'db' | 'store'>, upn: string, role: Role, meta: EventMetadata): Promise<boolean> {
  if (!ROLES.includes(role)) throw new InvalidUser(`the role must be one of ${ROLES.join(', ')}`)
  const user = await findUserByUpn(ctx.db, upn)
  if (!user) throw new InvalidUser(`no user ${upn}`)
  if (user.roles.includes(role)) return false
  await appendWithProjections(ctx, userStream(user.id), user.version, [{ type: 'UserRoleGranted', data: { userId: user.id, role } }], meta)
  return true
}

/** Adds a user to a group, or removes them from it; false when that changes nothing. */
export async function changeGroup(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  input: { upn: string; group: string; member: boolean },
  meta: EventMetadata,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw Object.assign(new InvalidUser(`no user ${input.upn}`), { statusCode: 404 })
    const state = { ...initialUserState(user.id), exists: true, upn: user.upn, groups: user.groups, version: user.version }
    const events = decideUser(state, { type: input.member ? 'JoinGroup' : 'LeaveGroup', data: { group: input.group } })
    if (events.length === 0) return false
    try {
      await appendWithProjections(ctx, userStream(user.id), user.version, events, meta)
      return true
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

/**
 * Brute-force protection per account, after Keycloak's (its defaults): after every `failureFactor` wrong
 * passwords in a row the account waits `waitIncrementSeconds` more before the next attempt, up to
 * `maxWaitSeconds`; a run of failures is forgotten `failureResetSeconds` after the last one. It is a
 * delay, not a lock, and it does not apply to a browser the user signed in from before (a device cookie,
 * routes/sign-in.ts): an attacker elsewhere cannot keep the user out of their own browser.
 */
export const BRUTE_FORCE = { failureFactor: 30, waitIncrementSeconds: 60, maxWaitSeconds: 15 * 60, failureResetSeconds: 12 * 3600 } as const

/** Milliseconds the account must still wait before a password is checked again (0: none). */
export function accountWaitMs(user: Pick<UsersTable, 'sign_in_failures' | 'last_sign_in_failure_at'>, now: Date): number {
  const last = user.last_sign_in_failure_at
  if (!last || user.sign_in_failures < BRUTE_FORCE.failureFactor) return 0
  if (now.getTime() - last.getTime() > BRUTE_FORCE.failureResetSeconds * 1000) return 0
  const waitSeconds = Math.min(BRUTE_FORCE.maxWaitSeconds, BRUTE_FORCE.waitIncrementSeconds * Math.floor(user.sign_in_failures / BRUTE_FORCE.failureFactor))
  return Math.max(0, last.getTime() + waitSeconds * 1000 - now.getTime())
}

export type PasswordSignIn =
  | { outcome: 'signed-in'; user: UsersTable }
  /** An unknown name or a wrong password: the same answer. userId is set for a known account (never shown). */
  | { outcome: 'wrong'; userId: string | null }
  /** The account is waiting after too many wrong passwords; the password was not checked. */
  | { outcome: 'wait'; seconds: number }

/**
 * A password sign-in:
 * - an unknown name and a wrong password take the same time and get the same answer;
 * - a known account's wrong password is a UserSignInFailed event, counted for its delay;
 * - an account in its delay is not checked at all, unless the browser is one the user signed in from.
 */
export async function signInWithPassword(
  ctx: Pick<CommandContext, 'db' | 'store' | 'now'>,
  input: { upn: string; password: string; trustedDevice: (userId: string) => boolean },
  meta: EventMetadata,
): Promise<PasswordSignIn> {
  const user = await findUserByUpn(ctx.db, input.upn)
  if (user && !input.trustedDevice(user.id)) {
    const wait = accountWaitMs(user, ctx.now())
    if (wait > 0) return { outcome: 'wait', seconds: Math.ceil(wait / 1000) }
  }
  const ok = await verifyPassword(input.password, user?.password_hash ?? DUMMY_HASH)
  if (!user || !user.password_hash || !ok) {
    if (user) await recordSignInFailure(ctx, user.upn, meta)
    return { outcome: 'wrong', userId: user?.id ?? null }
  }
  const { password_hash: _, ...rest } = user
  return { outcome: 'signed-in', user: rest }
}

async function recordSignInFailure(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, upn: string, meta: EventMetadata): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const user = await findUserByUpn(ctx.db, upn)
    if (!user) return
    const stale = !user.last_sign_in_failure_at || ctx.now().getTime() - user.last_sign_in_failure_at.getTime() > BRUTE_FORCE.failureResetSeconds * 1000
    const failures = (stale ? 0 : user.sign_in_failures) + 1
    try {
      await appendWithProjections(ctx, userStream(user.id), user.version, [{ type: 'UserSignInFailed', data: { userId: user.id, failures, at: ctx.now().toISOString() } }], meta)
      return
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}
