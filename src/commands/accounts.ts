// An admin deletes an account or resets its password; a user with a temporary password chooses a new one.
// - Delete: the user's event, its methods' and tokens' events, and the end of everything that signed in as
//   it (credentials, sessions, the provider's grants, temporary codes, upstream links) in one transaction.
//   Its tokens are held: an admin releases each one when the fob is back (the departed may still have it).
// - Reset: a temporary password the gateway makes up, shown once, stored only as a hash; it works until it
//   expires and only to choose a new password (routes/password.ts). Sessions end: a reset often follows a
//   compromise.
import { randomInt } from 'node:crypto'
import { sql } from 'kysely'
import { hashPassword, verifyPassword } from '../crypto/password.js'
import { decidePolicy } from '../domain/policy/decide.js'
import { policyStream } from '../domain/policy/events.js'
import { decide } from '../domain/token/decide.js'
import { tokenStream } from '../domain/token/events.js'
import { InvalidUser, UserError } from '../domain/user/decide.js'
import { userStream, type UserEvent } from '../domain/user/events.js'
import type { StreamWrite } from '../event-store/postgres.js'
import type { EventMetadata } from '../event-store/types.js'
import { loadPolicy } from '../read-models/policies.js'
import { tokensOfUser } from '../read-models/tokens.js'
import { findUser, findUserByUpn } from '../read-models/users.js'
import { appendStreamsWithProjections, appendWithProjections } from './append.js'
import { retryOnConflict, type CommandContext } from './context.js'
import { assertAnotherAdmin, endSignIns, MIN_PASSWORD_LENGTH } from './users.js'
import { signInsEnded } from '../oidc/sign-in-ends.js'
import { endSoftwareRequests } from '../methods/authenticator-app/requests.js'

/** The account a confirmation was asked for is not the one that has the name now (deleted and added again). */
export class AccountChanged extends UserError {
  override name = 'AccountChanged'
  override statusCode = 409
  constructor(upn: string) {
    super(`The account ${upn} changed since you asked: it was deleted and added again. Check it and try again.`)
  }
}

/** How long a temporary password works. */
export const TEMPORARY_PASSWORD_HOURS = 72

const noUser = (upn: string) => Object.assign(new InvalidUser(`no user ${upn}`), { statusCode: 404 })

/**
 * Deletes a user: UserDeleted, with SignInMethodRemoved for each active method and TokenUnassigned (held)
 * for each token assigned to or activated by them, and their direct policy assignments taken back; all
 * appended at the versions read, or retried. The last admin is not deleted.
 */
export async function deleteUser(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, input: { upn: string; userId?: string }, meta: EventMetadata): Promise<{ upn: string; tokens: string[]; retired: string[] }> {
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw noUser(input.upn)
    if (input.userId && input.userId !== user.id) throw new AccountChanged(user.upn)
    const writes: StreamWrite[] = []
    const userEvents: UserEvent[] = []
    const taken: string[] = []
    const destroyed: string[] = []
    for (const token of await tokensOfUser(ctx.db, user.id)) {
      if (token.status !== 'assigned' && token.status !== 'active') continue
      const { events } = decide(token, { type: 'UnassignToken', data: { userId: user.id, by: 'admin', held: true } })
      writes.push({ streamId: tokenStream(token.serial), expected: token.version, events })
      // A software token is retired with its key, not held (domain/token/decide.ts).
      if (events.some((e) => e.type === 'TokenSecretDestroyed')) destroyed.push(token.serial)
      if (token.status === 'active') userEvents.push({ type: 'SignInMethodRemoved', data: { userId: user.id, serial: token.serial, by: 'admin' } })
      if (!destroyed.includes(token.serial)) taken.push(token.serial)
    }
    const policies = await sql<{ id: string }>`select id from policies where targets @> ${JSON.stringify([{ kind: 'user', id: user.id }])}::jsonb`.execute(ctx.db)
    for (const { id } of policies.rows) {
      const policy = await loadPolicy(ctx.db, id)
      const events = decidePolicy(policy, { type: 'UnassignPolicy', data: { target: { kind: 'user', id: user.id } } })
      if (events.length > 0) writes.push({ streamId: policyStream(id), expected: policy.version, events })
    }
    userEvents.push({ type: 'UserDeleted', data: { userId: user.id, upn: user.upn } })
    writes.push({ streamId: userStream(user.id), expected: user.version, events: userEvents })
    await ctx.db.transaction().execute(async (trx) => {
      await assertAnotherAdmin(trx, user)
      // Activation codes not yet redeemed end with the account (before UserDeleted, the stream's last event).
      userEvents.splice(userEvents.length - 1, 0, ...await endSoftwareRequests(trx, user.id, 'account-deleted'))
      await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, writes, meta)
      await sql`delete from user_credentials where user_id = ${user.id}`.execute(trx)
      await sql`delete from temporary_codes where user_id = ${user.id}`.execute(trx)
      await sql`delete from upstream_links where user_id = ${user.id}`.execute(trx)
      await sql`delete from user_contacts where user_id = ${user.id}`.execute(trx)
      if (destroyed.length > 0) await sql`delete from token_secrets where serial = any(${destroyed}::text[])`.execute(trx)
      await endSignIns(trx, user.id, ctx.now())
    })
    ctx.store.committed()
    signInsEnded(user.id)
    return { upn: user.upn, tokens: taken, retired: destroyed }
  })
}

// Letters and digits nobody confuses (no 0/O, 1/l/I): 16 of them, about 93 bits, typed from a note.
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789'

export function temporaryPassword(): string {
  const chars = Array.from({ length: 16 }, () => ALPHABET[randomInt(ALPHABET.length)]!)
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join('')).join('-')
}

/** Sets a temporary password for the user, ends their sessions; the password is returned, never recorded. */
export async function resetPassword(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, input: { upn: string; userId?: string }, meta: EventMetadata): Promise<{ upn: string; password: string; expiresAt: Date }> {
  const password = temporaryPassword()
  const hash = await hashPassword(password)
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw noUser(input.upn)
    if (input.userId && input.userId !== user.id) throw new AccountChanged(user.upn)
    const now = ctx.now()
    const expiresAt = new Date(now.getTime() + TEMPORARY_PASSWORD_HOURS * 3_600_000)
    await ctx.db.transaction().execute(async (trx) => {
      // What the old password could still redeem or finish ends with it.
      const ended = await endSoftwareRequests(trx, user.id, 'password-reset')
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), user.version,
        [{ type: 'UserPasswordReset', data: { userId: user.id, expiresAt: expiresAt.toISOString() } }, ...ended], meta)
      await sql`insert into user_credentials (user_id, password_hash, updated_at, must_change, expires_at)
                values (${user.id}, ${hash}, ${now}, true, ${expiresAt})
                on conflict (user_id) do update set password_hash = excluded.password_hash, updated_at = excluded.updated_at,
                  must_change = true, expires_at = excluded.expires_at`.execute(trx)
      await endSignIns(trx, user.id, now)
    })
    ctx.store.committed()
    signInsEnded(user.id)
    return { upn: user.upn, password, expiresAt }
  })
}

export class PasswordNotChanged extends UserError {
  override name = 'PasswordNotChanged'
}

/** A rule a new password breaks, in words, or null. */
export function passwordProblem(password: string, confirm: string): { field: 'password' | 'confirm'; message: string } | null {
  if (password.length < MIN_PASSWORD_LENGTH) return { field: 'password', message: `Use at least ${MIN_PASSWORD_LENGTH} characters.` }
  if (password.length > 256) return { field: 'password', message: 'Use at most 256 characters.' }
  if (password !== confirm) return { field: 'confirm', message: "The passwords don't match." }
  return null
}

/**
 * The user replaces the temporary password they signed in with (set at `since`): refused when it changed or
 * expired since, or when the new one is the temporary one. UserPasswordSet and the new hash, together.
 */
export async function changeTemporaryPassword(
  ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, input: { userId: string; since: number; password: string }, meta: EventMetadata,
): Promise<Date> {
  const hash = await hashPassword(input.password)
  return retryOnConflict(async () => {
    const user = await findUser(ctx.db, input.userId)
    const credentials = user && await ctx.db.selectFrom('user_credentials').selectAll().where('user_id', '=', user.id).executeTakeFirst()
    const now = ctx.now()
    if (!user || user.disabled || !credentials?.must_change || credentials.updated_at.getTime() !== input.since
      || (credentials.expires_at && credentials.expires_at <= now)) {
      throw new PasswordNotChanged('Your temporary password no longer works. Sign in again, or ask your administrator for a new one.')
    }
    if (await verifyPassword(input.password, credentials.password_hash)) {
      throw Object.assign(new PasswordNotChanged('Choose a password different from your temporary one.'), { field: 'password' })
    }
    await ctx.db.transaction().execute(async (trx) => {
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), user.version, [{ type: 'UserPasswordSet', data: { userId: user.id } }], meta)
      const changed = await sql`update user_credentials set password_hash = ${hash}, updated_at = ${now}, must_change = false, expires_at = null
        where user_id = ${user.id} and date_trunc('milliseconds', updated_at) = ${credentials.updated_at}`.execute(trx)
      // An admin reset it again meanwhile: that one wins.
      if (Number(changed.numAffectedRows) !== 1) throw new PasswordNotChanged('Your temporary password no longer works. Sign in again, or ask your administrator for a new one.')
    })
    ctx.store.committed()
    return now
  })
}
