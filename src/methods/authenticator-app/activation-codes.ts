// Activation codes (Defender's "Request a software token"): an admin, or the user where the policy allows
// it, asks for a software token for a user; the user redeems the code at /activate with their password, is
// shown a key, and proves it with the app's first code (setup.ts).
// - A code is 24 characters of Crockford base32 from the cryptographic source: 120 bits, more than the
//   112 NIST SP 800-63B-4 asks of a binding code that is not throttled (it is throttled too, per address
//   and per code). Typed in six groups of four; case, dashes, spaces, and O/I/L for 0/1 are forgiven.
// - Only a keyed hash is kept (activation_codes); the code is shown once or sealed in an e-mail job.
// - One code per user is live: a new one replaces it. Redeeming is a compare-and-set (one winner).
// - Its life is in the user's stream: ActivationCodeRequested (by whom), Issued (until when, how sent),
//   Redeemed (the key's serial), Expired (ran out, replaced, account deleted).
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { appendStreamsWithProjections } from '../../commands/append.js'
import { retryOnConflict, type CommandContext } from '../../commands/context.js'
import { contactOf, queueNotice } from '../../commands/contacts.js'
import { userStream, type UserEvent } from '../../domain/user/events.js'
import type { EventMetadata } from '../../event-store/types.js'
import { effectivePolicy } from '../../read-models/policies.js'
import type { Executor } from '../../read-models/database.js'
import { findUser } from '../../read-models/users.js'
import { activeTokensOfUser } from '../../read-models/tokens.js'
import { TooManyMethods } from '../../commands/tokens.js'
import { maskEmail } from '../sent-code/destination.js'
import { startSetup, type StartedSetup } from './setup.js'
import { endSoftwareRequests } from './requests.js'

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const CODE_CHARS = 24

/** Refused: a 4xx with a message the asker can act on; nothing was written. */
export class ActivationRefused extends Error {
  override name = 'ActivationRefused'
  constructor(message: string, readonly statusCode = 422) {
    super(message)
  }
}

/** The one answer at /activate for a code that is unknown, used, expired or someone else's, an unknown account, a wrong password. */
export const INVALID_ACTIVATION = "That activation code, account or password isn't right. Check them and try again. A code works once and expires: ask for a new one if yours did."


function newCode(): string {
  const bytes = randomBytes(15)
  let bits = 0n
  for (const b of bytes) bits = (bits << 8n) | BigInt(b)
  let text = ''
  for (let i = CODE_CHARS - 1; i >= 0; i--) text += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)]
  return text
}

/** The code as typed -> its canonical form, or null when it cannot be one. */
export function normalizeActivationCode(typed: unknown): string | null {
  if (typeof typed !== 'string' || typed.length > 64) return null
  const text = typed.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1')
  return text.length === CODE_CHARS && [...text].every((c) => CROCKFORD.includes(c)) ? text : null
}

export const formatActivationCode = (code: string) => code.match(/.{4}/g)!.join('-')

const codeHash = (ctx: Pick<CommandContext, 'vault'>, code: string) => ctx.vault.keyedHash('activation-code', code)

export interface IssuedActivationCode {
  id: string
  userId: string
  /** Only when it is shown to whoever asked: the one time it exists outside a sealed e-mail. */
  code: string | null
  expiresAt: Date
  delivery: 'shown' | 'email'
  /** The masked address it was sent to. */
  to: string | null
}

/**
 * Asks for a software token for the user: a new activation code, replacing any live one.
 * delivery 'email': sent to the user's address (refused without one); 'shown': returned once;
 * 'auto': e-mailed when the user has an address, else shown.
 * - The user's policy must allow authenticator apps; a user asking for themselves needs the policy's leave.
 */
export async function requestActivationCode(
  ctx: CommandContext,
  input: { userId: string; by: 'admin' | 'self'; delivery: 'email' | 'shown' | 'auto'; activateUrl: string },
  meta: EventMetadata,
): Promise<IssuedActivationCode> {
  const [policy, contact] = await Promise.all([effectivePolicy(ctx.db, input.userId), contactOf(ctx.db, input.userId)])
  if (!policy.settings.methods.includes('app')) throw new ActivationRefused(`The security policy ${policy.name} does not allow authenticator apps.`, 409)
  if (input.by === 'self' && !policy.settings.userRequestsSoftwareTokens) throw new ActivationRefused('Your security policy does not let you request a software token. Ask your administrator.', 403)
  const delivery = input.delivery === 'auto' ? (contact.email ? 'email' : 'shown') : input.delivery
  if (delivery === 'email' && !contact.email) throw new ActivationRefused('The user has no email address. Set one first, or show the code instead.', 409)
  const code = newCode()
  const id = `ACT-${randomBytes(6).toString('hex').toUpperCase()}`
  const now = ctx.now()
  // A code the user asks for is for now: a day at most. An admin's lasts the policy's days.
  const days = input.by === 'self' ? Math.min(1, policy.settings.activationCodeDays) : policy.settings.activationCodeDays
  const expiresAt = new Date(now.getTime() + days * 86_400_000)
  const to = delivery === 'email' ? maskEmail(contact.email!) : null
  await retryOnConflict(async () => {
    // The account as it is now, and its stream at that version: a deletion or a disable in between wins.
    const user = await findUser(ctx.db, input.userId)
    if (!user || user.deleted) throw new ActivationRefused('There is no such user.', 404)
    if (user.disabled) throw new ActivationRefused('The account is disabled: enable it before asking for a software token.', 409)
    await ctx.db.transaction().execute(async (trx) => {
    // One live code per user, taken one request at a time.
    await sql`select pg_advisory_xact_lock(hashtext(${`activation:${input.userId}`}))`.execute(trx)
    const replaced = await sql<{ id: string }>`update activation_codes set status = 'replaced'
      where user_id = ${input.userId} and status = 'issued' returning id`.execute(trx)
    await sql`insert into activation_codes (id, user_id, code_hash, by, status, expires_at, created_at)
      values (${id}, ${input.userId}, ${codeHash(ctx, code)}, ${input.by}, 'issued', ${expiresAt}, ${now})`.execute(trx)
    const events: UserEvent[] = [
      ...replaced.rows.map((r): UserEvent => ({ type: 'ActivationCodeExpired', data: { userId: input.userId, code: r.id, reason: 'replaced' } })),
      { type: 'ActivationCodeRequested', data: { userId: input.userId, code: id, by: input.by } },
      { type: 'ActivationCodeIssued', data: { userId: input.userId, code: id, expiresAt: expiresAt.toISOString(), delivery, to } },
    ]
    await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, [{ streamId: userStream(input.userId), expected: user.version, events }], meta)
    if (delivery === 'email') {
      await queueNotice(trx, ctx.vault, { userId: input.userId, now, subject: 'Your activation code for an authenticator app',
        text: `Your activation code is ${formatActivationCode(code)}\n\nTo set up your authenticator app, go to ${input.activateUrl}, enter this code `
          + `and sign in with your password. The code works once, for ${days} ${days === 1 ? 'day' : 'days'}.\n\n`
          + `If you did not expect it, tell your administrator. Nobody can use it without your password.` })
    }
    })
  })
  ctx.store.committed()
  return { id, userId: input.userId, code: delivery === 'shown' ? code : null, expiresAt, delivery, to }
}

/** The live code's id and user, or null (unknown, used, expired: the caller gives one answer). Reads only. */
export async function findActivationCode(ctx: Pick<CommandContext, 'db' | 'vault' | 'now'>, typed: unknown): Promise<{ id: string; userId: string } | null> {
  const code = normalizeActivationCode(typed)
  if (!code) return null
  const row = (await sql<{ id: string; user_id: string }>`select id, user_id from activation_codes
    where code_hash = ${codeHash(ctx, code)} and status = 'issued' and expires_at > ${ctx.now()}`.execute(ctx.db)).rows[0]
  return row ? { id: row.id, userId: row.user_id } : null
}

/**
 * Redeems the code for its user (whose password the caller checked): of two requests at once, one wins.
 * The key is made (startSetup) and ActivationCodeRedeemed written in the same transaction.
 * Throws ActivationRefused(INVALID_ACTIVATION) when it is no longer live.
 */
export async function redeemActivationCode(
  ctx: CommandContext, input: { code: string; userId: string }, meta: EventMetadata,
): Promise<StartedSetup> {
  const code = normalizeActivationCode(input.code)
  if (!code) throw new ActivationRefused(INVALID_ACTIVATION)
  const [policy, active] = await Promise.all([effectivePolicy(ctx.db, input.userId), activeTokensOfUser(ctx.db, input.userId)])
  if (!policy.settings.methods.includes('app')) throw new ActivationRefused("Your organization's security policy doesn't allow authenticator apps. Contact your administrator.", 403)
  // Room for one more method, before the code is used up and a key shown that could never be added.
  if (active.length >= policy.settings.maxMethods) throw new ActivationRefused(new TooManyMethods(policy.settings.maxMethods).message, 409)
  const setup = await retryOnConflict(() => ctx.db.transaction().execute(async (trx) => {
    const live = (await sql<{ id: string; by: 'admin' | 'self' }>`select id, by from activation_codes
      where code_hash = ${codeHash(ctx, code)} and user_id = ${input.userId} and status = 'issued' and expires_at > ${ctx.now()} for update`.execute(trx)).rows[0]
    if (!live) throw new ActivationRefused(INVALID_ACTIVATION)
    // A code the user asked for stands only while the policy still lets them and a method of theirs vouches for it.
    if (live.by === 'self' && (!policy.settings.userRequestsSoftwareTokens || active.length === 0)) {
      throw new ActivationRefused('This activation code can no longer be used. Ask your administrator for one.', 403)
    }
    const won = (await sql<{ id: string; by: 'admin' | 'self' }>`update activation_codes set status = 'redeemed', redeemed_at = ${ctx.now()}
      where id = ${live.id} and status = 'issued' returning id, by`.execute(trx)).rows[0]
    if (!won) throw new ActivationRefused(INVALID_ACTIVATION)
    const started = await startSetup({ ...ctx, db: trx }, { userId: input.userId, by: won.by, activationCode: won.id, replace: false })
    await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, [{ streamId: userStream(input.userId), expected: 'any',
      events: [{ type: 'ActivationCodeRedeemed', data: { userId: input.userId, code: won.id, serial: started.serial } }] }], meta)
    return started
  }))
  ctx.store.committed()
  return setup
}

/**
 * Codes whose time ran out: each one's row and its ActivationCodeExpired in a transaction of its own (a
 * conflict on one user's stream holds up nobody else's). The row's status decides: of two processes
 * sweeping at once, one records each expiry. Returns how many it recorded.
 */
export async function expireActivationCodes(ctx: Pick<CommandContext, 'db' | 'store' | 'now'>, meta: EventMetadata, limit = 500): Promise<number> {
  const due = (await sql<{ id: string }>`select id from activation_codes where status = 'issued' and expires_at <= ${ctx.now()}
    order by expires_at limit ${limit}`.execute(ctx.db)).rows
  let n = 0
  for (const { id } of due) {
    const recorded = await retryOnConflict(() => ctx.db.transaction().execute(async (trx) => {
      const row = (await sql<{ user_id: string }>`update activation_codes set status = 'expired'
        where id = ${id} and status = 'issued' and expires_at <= ${ctx.now()} returning user_id`.execute(trx)).rows[0]
      if (!row) return false
      await appendStreamsWithProjections({ ...ctx, db: trx as never, deferCommit: true }, [{ streamId: userStream(row.user_id), expected: 'any',
        events: [{ type: 'ActivationCodeExpired', data: { userId: row.user_id, code: id, reason: 'expired' } }] }], meta)
      return true
    }))
    if (recorded) {
      ctx.store.committed()
      n++
    }
  }
  return n
}

/**
 * An admin takes back the user's live activation code (and the set-ups it opened): ActivationCodeExpired
 * ('revoked'). Returns how many codes ended (0: there was none live).
 */
export async function revokeActivationCodes(ctx: CommandContext, input: { userId: string }, meta: EventMetadata): Promise<number> {
  const ended = await retryOnConflict(() => ctx.db.transaction().execute(async (trx) => {
    const events = await endSoftwareRequests(trx, input.userId, 'revoked')
    if (events.length > 0) await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, [{ streamId: userStream(input.userId), expected: 'any', events }], meta)
    return events.length
  }))
  if (ended > 0) ctx.store.committed()
  return ended
}

/** The user's live activation code, as an admin sees it (its id, who asked, until when), or null. */
export async function liveActivationCode(db: Executor, userId: string, now: Date): Promise<{ id: string; by: string; expiresAt: Date } | null> {
  const row = (await sql<{ id: string; by: string; expires_at: Date }>`select id, by, expires_at from activation_codes
    where user_id = ${userId} and status = 'issued' and expires_at > ${now} order by created_at desc limit 1`.execute(db)).rows[0]
  return row ? { id: row.id, by: row.by, expiresAt: row.expires_at } : null
}
