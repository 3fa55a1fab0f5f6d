// User commands: register, check a password, record sign-ins and wrong passwords.
import { endSoftwareRequests } from '../methods/authenticator-app/requests.js'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { DUMMY_HASH, hashPassword, verifyPassword } from '../crypto/password.js'
import { decideUser, InvalidUser, UserAlreadyExists, UserError } from '../domain/user/decide.js'
import { ROLES, userStream, type Role } from '../domain/user/events.js'
import { initialUserState } from '../domain/user/state.js'
import type { EventMetadata } from '../event-store/types.js'
import { findUser, findUserByUpn, type UsersTable } from '../read-models/users.js'
import type { Executor } from '../read-models/database.js'
import { activeTokensOfUser } from '../read-models/tokens.js'
import { recordSignInEnd, signInsEnded } from '../oidc/sign-in-ends.js'
import { appendWithProjections } from './append.js'
import { retryOnConflict, type CommandContext } from './context.js'

export const MIN_PASSWORD_LENGTH = 8

/**
 * Everything that signs in as the user ends: gateway sessions, the provider's sessions, grants and tokens.
 * What is kept in Redis cannot be deleted here: the end is recorded, and it is refused from now on
 * (oidc/sign-in-ends.ts).
 */
export async function endSignIns(trx: Executor, userId: string, now: Date): Promise<void> {
  await sql`update gateway_sessions set ended_at = ${now} where user_id = ${userId} and ended_at is null`.execute(trx)
  // An interaction finished with a sign-in names the account inside its result.
  await sql`delete from oidc_payloads where payload->>'accountId' = ${userId} or payload #>> '{result,login,accountId}' = ${userId}`.execute(trx)
  await recordSignInEnd(trx, userId)
}

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

/** Records a sign-in on the user's stream (method: pwd, otp, ...). */
export async function recordSignIn(ctx: Pick<CommandContext, 'db' | 'store'>, userId: string, method: string, meta: EventMetadata): Promise<void> {
  await retryOnConflict(() => appendWithProjections(ctx, userStream(userId), 'any', [{ type: 'UserSignedIn', data: { userId, method } }], meta))
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
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw Object.assign(new InvalidUser(`no user ${input.upn}`), { statusCode: 404 })
    const state = { ...initialUserState(user.id), exists: true, upn: user.upn, groups: user.groups, version: user.version }
    const events = decideUser(state, { type: input.member ? 'JoinGroup' : 'LeaveGroup', data: { group: input.group } })
    if (events.length === 0) return false
    await appendWithProjections(ctx, userStream(user.id), user.version, events, meta)
    return true
  })
}

/**
 * Brute-force protection per account, after Keycloak's (its defaults): after every `failureFactor` wrong
 * passwords in a row the account waits `waitIncrementSeconds` more before the next attempt, up to
 * `maxWaitSeconds`; a run of failures is forgotten `failureResetSeconds` after the last one. It is a
 * delay, not a lock, and it does not apply to a browser the user signed in from before (a device cookie,
 * routes/sign-in.ts): an attacker elsewhere cannot keep the user out of their own browser.
 */
export const BRUTE_FORCE = { failureFactor: 30, waitIncrementSeconds: 60, maxWaitSeconds: 15 * 60, failureResetSeconds: 12 * 3600 } as const

/** Seconds an account waits after its latest wrong password, for a run of `failures` (0 below the failure factor). */
export function waitSecondsAfter(failures: number): number {
  if (failures < BRUTE_FORCE.failureFactor) return 0
  return Math.min(BRUTE_FORCE.maxWaitSeconds, BRUTE_FORCE.waitIncrementSeconds * Math.floor(failures / BRUTE_FORCE.failureFactor))
}

/** The account's run of wrong passwords: forgotten failureResetSeconds after the last one. */
function currentRun(user: Pick<UsersTable, 'sign_in_failures' | 'last_sign_in_failure_at'>, now: Date): number {
  const last = user.last_sign_in_failure_at
  return last && now.getTime() - last.getTime() <= BRUTE_FORCE.failureResetSeconds * 1000 ? user.sign_in_failures : 0
}

/** Milliseconds the account must still wait before a password is checked again (0: none). */
export function accountWaitMs(user: Pick<UsersTable, 'sign_in_failures' | 'last_sign_in_failure_at'>, now: Date): number {
  const wait = waitSecondsAfter(currentRun(user, now))
  return wait === 0 ? 0 : Math.max(0, user.last_sign_in_failure_at!.getTime() + wait * 1000 - now.getTime())
}

/** True when the password is the user's (an unknown user takes as long as a known one and is never right). */
export async function checkPassword(user: { password_hash: string | null } | undefined, password: string): Promise<boolean> {
  const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH)
  return !!user?.password_hash && ok
}

/**
 * Records a wrong password on the account (UserSignInFailed), counting the run of failures. Failures of one
 * account are recorded one at a time (a transaction-scoped advisory lock on its stream, on every process),
 * so a burst of them neither loses one to a conflict nor miscounts the run.
 */
export async function recordSignInFailure(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, upn: string, meta: EventMetadata): Promise<void> {
  const user = await findUserByUpn(ctx.db, upn)
  if (!user) return
  await ctx.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext(${userStream(user.id)}))`.execute(trx)
    // Deleted meanwhile: nothing left to count against.
    const current = await findUser(trx, user.id)
    if (!current) return
    const failures = currentRun(current, ctx.now()) + 1
    await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), current.version,
      [{ type: 'UserSignInFailed', data: { userId: user.id, failures, at: ctx.now().toISOString() } }], meta)
  })
  ctx.store.committed()
}

export class NotYourMethod extends UserError {
  override name = 'NotYourMethod'
  constructor() {
    super('Choose one of your sign-in methods.')
  }
}

/** The user's default sign-in method: one of their active methods (the route checks the second factor). */
export async function chooseDefaultMethod(ctx: Pick<CommandContext, 'db' | 'store'>, input: { userId: string; serial: string }, meta: EventMetadata): Promise<boolean> {
  const active = await activeTokensOfUser(ctx.db, input.userId)
  if (!active.some((t) => t.serial === input.serial)) throw new NotYourMethod()
  return retryOnConflict(async () => {
    const user = await findUser(ctx.db, input.userId)
    if (!user) throw new NotYourMethod()
    if (user.default_method === input.serial) return false
    await appendWithProjections(ctx, userStream(user.id), user.version, [{ type: 'DefaultMethodChosen', data: { userId: user.id, serial: input.serial } }], meta)
    return true
  })
}

/** The default method among the user's active ones: the chosen one while it is active, else the newest. */
export function defaultMethodOf<T extends { serial: string }>(active: readonly T[], chosen: string | null): T | null {
  return active.find((t) => t.serial === chosen) ?? active[0] ?? null
}

/**
 * An admin switches an account off or on. Switched off, every gateway session of the account ends in the
 * same transaction, and no sign-in of any kind is accepted (password, upstream provider, the provider's own
 * session). False when it changes nothing.
 */
export async function setUserDisabled(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, input: { upn: string; disabled: boolean }, meta: EventMetadata): Promise<boolean> {
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw Object.assign(new InvalidUser(`no user ${input.upn}`), { statusCode: 404 })
    if (user.disabled === input.disabled) return false
    await ctx.db.transaction().execute(async (trx) => {
      if (input.disabled) await assertAnotherAdmin(trx, user)
      // A disabled account finishes no software token it was asked for, and redeems no code.
      const ended = input.disabled ? await endSoftwareRequests(trx, user.id, 'account-disabled') : []
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), user.version,
        [{ type: input.disabled ? 'UserDisabled' : 'UserEnabled', data: { userId: user.id } }, ...ended], meta)
      // Enabling it again must not bring back what someone else may have held (a refresh token lives for days).
      if (input.disabled) await endSignIns(trx, user.id, ctx.now())
    })
    ctx.store.committed()
    if (input.disabled) signInsEnded(user.id)
    return true
  })
}

/** Takes a role from a user; false when they did not hold it. The last enabled admin keeps theirs. */
export async function revokeRole(ctx: Pick<CommandContext, 'db' | 'store'>, upn: string, role: Role, meta: EventMetadata): Promise<boolean> {
  if (!ROLES.includes(role)) throw new InvalidUser(`the role must be one of ${ROLES.join(', ')}`)
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, upn)
    if (!user) throw Object.assign(new InvalidUser(`no user ${upn}`), { statusCode: 404 })
    if (!user.roles.includes(role)) return false
    await ctx.db.transaction().execute(async (trx) => {
      if (role === 'admin') await assertAnotherAdmin(trx, user)
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), user.version, [{ type: 'UserRoleRevoked', data: { userId: user.id, role } }], meta)
    })
    ctx.store.committed()
    return true
  })
}

export class LastAdmin extends UserError {
  override name = 'LastAdmin'
  override statusCode = 409
  constructor(upn: string) {
    super(`${upn} is the only admin left. Grant the admin role to someone else first.`)
  }
}

/**
 * Inside the transaction that disables, deletes or takes the admin role from `user`: refuses when no other
 * enabled admin would be left. One such check at a time on every process (an advisory lock held to the
 * commit), so two admins removing each other at once cannot both pass.
 */
export async function assertAnotherAdmin(trx: Executor, user: Pick<UsersTable, 'id' | 'upn' | 'roles'>): Promise<void> {
  if (!user.roles.includes('admin')) return
  await sql`select pg_advisory_xact_lock(hashtext('tessera:admins'))`.execute(trx)
  const others = await sql<{ n: number }>`select count(*)::int as n from users
    where roles ? 'admin' and not deleted and not disabled and id <> ${user.id}`.execute(trx)
  if (others.rows[0]!.n === 0) throw new LastAdmin(user.upn)
}
