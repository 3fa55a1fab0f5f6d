// A method that is sent codes: registered with its destination (sealed), then a code per challenge.
// - A code is digits from the cryptographic source, the method's length, valid the policy's minutes, kept
//   as a keyed hash with its challenge number. Only the newest challenge of a method counts; its number is
//   what the token's replay guard compares, so a code is accepted once (domain/token/decide.ts).
// - Issuing writes the challenge, the delivery job (the message sealed) and ChallengeIssued in one
//   transaction: nothing is lost between issuing and sending (delivery.ts sends it).
// - The send budget (per user, per destination, per source address, per minute for the whole gateway) is
//   counted in the database, so every gateway process shares it; the guess budget is the token's lock.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import { sql } from 'kysely'
import type { DeliveryConfig } from '../../../fastify.config.js'
import { appendStreamsWithProjections } from '../../commands/append.js'
import { appendTokenEvents } from '../../commands/token-writer.js'
import { retryOnConflict, type CommandContext } from '../../commands/context.js'
import { policyAllows } from '../../domain/token/decide.js'
import { NotAllowedByPolicy, SerialUnavailable, TokenDisabledError, TokenError, TokenLocked, TooManyAttempts } from '../../domain/token/errors.js'
import { MAX_ACTIVATION_FAILURES } from '../../domain/token/decide.js'
import { TooManyMethods, writeTokenEvents } from '../../commands/tokens.js'
import { tokenStream, type AssignedBy, type TokenEvent } from '../../domain/token/events.js'
import type { TokenState } from '../../domain/token/state.js'
import type { OtpCheck } from '../../domain/otp/otp.js'
import type { EventMetadata } from '../../event-store/types.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { loadToken, tokensOfUser } from '../../read-models/tokens.js'
import { maskEmail, maskMobile } from './destination.js'
import { contactOf } from '../../commands/contacts.js'
import type { Executor } from '../../read-models/database.js'

export type SentKind = 'sms' | 'email'

/** What a job's sealed message is bound to: its method and challenge, or (a notice) the job itself. */
export const deliveryAad = (serial: string, challenge: number | string) => `delivery:${serial}:${challenge}`
export const noticeAad = (id: string) => `notice:${id}`

export const isSentCode = (token: Pick<TokenState, 'kind'>): token is TokenState & { kind: SentKind } => token.kind === 'sms' || token.kind === 'email'

export class TooManySends extends TokenError {
  override name = 'TooManySends'
  constructor(readonly minutes: number) {
    super(`You asked for too many codes. Wait ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}, or choose another way to verify.`)
  }
}

export class AlreadyYourMethod extends TokenError {
  override name = 'AlreadyYourMethod'
  constructor(kind: SentKind) {
    super(kind === 'sms' ? 'This phone number is already one of your sign-in methods.' : 'This email address is already one of your sign-in methods.')
  }
}

/** Phones and addresses being added at once, not yet confirmed with their code. */
const MAX_PENDING = 3

export class TooManyPending extends TokenError {
  override name = 'TooManyPending'
  constructor() {
    super('You started adding too many phones or email addresses. Finish one with its code, or wait a day.')
  }
}

/** The gateway as a whole sent as many codes as it may this minute (against SMS pumping fraud). */
export class GatewayBusy extends TokenError {
  override name = 'GatewayBusy'
  constructor() {
    super("We can't send codes right now. Try again in a minute, or choose another way to verify.")
  }
}

const destinationHash = (ctx: Pick<CommandContext, 'vault'>, destination: string) => ctx.vault.keyedHash('destination', destination)
/** A code's keyed hash, bound to its method; which challenge it answers is the row's number. */
const codeHash = (ctx: Pick<CommandContext, 'vault'>, serial: string, code: string) => ctx.vault.keyedHash('code', `${serial}\u0000${code}`)

/**
 * The send budget for a user, a destination and a source address (the hour's counts): the refusal, or null.
 * Inside issueChallenge it runs under the per-user and per-destination locks; before a registration it runs
 * without them, so that a refused number is not even registered.
 */
export async function sendRefusal(
  db: Executor, input: { userId: string; hash: Buffer; sourceIp: string | null; now: Date; lock?: boolean },
  limits: { sendsPerHour: number; sendsPerAddressPerHour: number },
): Promise<TooManySends | null> {
  const hourAgo = new Date(input.now.getTime() - 3_600_000)
  const locks = input.lock
    ? sql`select pg_advisory_xact_lock(hashtext(${`sends:${input.userId}`})), pg_advisory_xact_lock(hashtext(${`sends:${input.hash.toString('hex')}`}))`
    : sql`select 1`
  const counts = (await sql<{ user: number; destination: number; source: number; first: Date | null }>`
    with locked as (${locks})
    select (select count(*)::int from deliveries where user_id = ${input.userId} and created_at > ${hourAgo} and challenge is not null) as user,
           (select count(*)::int from deliveries where destination_hash = ${input.hash} and created_at > ${hourAgo} and challenge is not null
              and (purpose = 'sign-in' or user_id = ${input.userId})) as destination,
           (select count(*)::int from deliveries where source_ip = ${input.sourceIp} and created_at > ${hourAgo} and challenge is not null) as source,
           (select min(created_at) from deliveries where user_id = ${input.userId} and created_at > ${hourAgo} and challenge is not null) as first
    from locked`.execute(db)).rows[0]!
  if (counts.user >= limits.sendsPerHour || counts.destination >= limits.sendsPerHour) {
    return new TooManySends(Math.max(1, Math.ceil(((counts.first?.getTime() ?? input.now.getTime()) + 3_600_000 - input.now.getTime()) / 60_000)))
  }
  if (input.sourceIp && counts.source >= limits.sendsPerAddressPerHour) return new TooManySends(60)
  return null
}

export const destinationHashOf = destinationHash

/**
 * Registers a phone or an e-mail address as a method of the user, not yet active (TokenRegistered): its
 * first code activates it. Registering the same destination again reuses the pending one.
 */
export async function registerSentCodeMethod(
  ctx: CommandContext, input: { userId: string; kind: SentKind; destination: string; by?: AssignedBy }, meta: EventMetadata,
): Promise<TokenState> {
  const [policy, mine] = await Promise.all([effectivePolicy(ctx.db, input.userId), tokensOfUser(ctx.db, input.userId)])
  if (!policy.settings.methods.includes(input.kind)) throw new NotAllowedByPolicy()
  const fingerprint = destinationHash(ctx, input.destination).toString('hex').slice(0, 32)
  const same = mine.filter((t) => t.kind === input.kind && t.seedFingerprint === fingerprint)
  if (same.some((t) => t.status === 'active')) throw new AlreadyYourMethod(input.kind)
  // A pending one is taken up again, unless its wrong codes used it up: then a fresh one.
  const pending = same.find((t) => t.status === 'assigned' && t.activationFailures < MAX_ACTIVATION_FAILURES)
  if (pending) return pending
  if (mine.filter((t) => t.status === 'active').length >= policy.settings.maxMethods) throw new TooManyMethods(policy.settings.maxMethods)
  // Started and not finished: a few at a time, so that registrations cannot pile up.
  if (mine.filter((t) => isSentCode(t) && t.status === 'assigned' && t.activationFailures < MAX_ACTIVATION_FAILURES).length >= MAX_PENDING) throw new TooManyPending()
  const serial = `${input.kind === 'sms' ? 'PHONE' : 'EMAIL'}-${randomBytes(8).toString('hex').toUpperCase()}`
  const masked = input.kind === 'sms' ? maskMobile(input.destination) : maskEmail(input.destination)
  const event: TokenEvent = { type: 'TokenRegistered', data: { serial, kind: input.kind, userId: input.userId, destination: masked,
    digits: policy.settings.sentCodeLength, fingerprint, by: input.by ?? 'self' } }
  const sealed = ctx.vault.seal(serial, Buffer.from(input.destination, 'utf8'))
  await ctx.db.transaction().execute(async (trx) => {
    await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, [{ streamId: tokenStream(serial), expected: 'no-stream', events: [event] }], meta)
    await sql`insert into token_secrets (serial, key_id, nonce, ciphertext) values (${serial}, ${sealed.keyId}, ${sealed.nonce}, ${sealed.ciphertext})`.execute(trx)
  })
  ctx.store.committed()
  return (await loadToken(ctx.db, serial)).state
}

export interface IssuedChallenge {
  serial: string
  challenge: number
  deliveryId: string
  expiresAt: Date
  destination: string
}

/**
 * Makes a code for the user's method and queues its message (challenge, job and ChallengeIssued in one
 * transaction). purpose 'activation': the method is the user's, registered, not yet active. Throws the
 * reason when no code may be sent (locked, disabled, not allowed, over a budget).
 */
export async function issueChallenge(
  ctx: CommandContext, limits: Pick<DeliveryConfig, 'sendsPerAddressPerHour' | 'sendsPerMinute'>,
  input: { serial: string; userId: string; sourceIp: string | null; purpose: 'sign-in' | 'activation' }, meta: EventMetadata,
): Promise<IssuedChallenge> {
  return retryOnConflict(async () => {
    const { state, sealed, policy } = await loadToken(ctx.db, input.serial)
    const wanted = input.purpose === 'activation' ? 'assigned' : 'active'
    if (!isSentCode(state) || state.userId !== input.userId || state.status !== wanted || !sealed) throw new SerialUnavailable()
    const now = ctx.now()
    if (state.disabled) throw new TokenDisabledError()
    if (state.lockedUntil && state.lockedUntil > now) throw new TokenLocked(state.lockedUntil)
    if (!policyAllows(policy, state)) throw new NotAllowedByPolicy()
    if (input.purpose === 'activation' && state.activationFailures >= MAX_ACTIVATION_FAILURES) throw new TooManyAttempts()
    const plain = ctx.vault.open(input.serial, sealed)
    const to = plain.toString('utf8')
    plain.fill(0)
    // The method's own length (fixed when it was added), whatever the policy says today.
    const digits = state.digits
    const code = String(randomInt(0, 10 ** digits)).padStart(digits, '0')
    const expiresAt = new Date(now.getTime() + policy.sentCodeMinutes * 60_000)
    const text = state.kind === 'sms'
      ? `${code} is your Tessera code. It expires in ${policy.sentCodeMinutes} minutes. Never share it.`
      : `Your Tessera sign-in code is ${code}.\n\nIt expires in ${policy.sentCodeMinutes} minutes. If you did not ask for it, someone has your password: change it and tell your administrator.`
    const hash = destinationHash(ctx, to)
    const result = await ctx.db.transaction().execute(async (trx) => {
      // One user's and one destination's sends are counted one at a time, on every process.
      const refusal = await sendRefusal(trx, { userId: input.userId, hash, sourceIp: input.sourceIp, now, lock: true },
        { sendsPerHour: policy.sendsPerHour, sendsPerAddressPerHour: limits.sendsPerAddressPerHour })
      if (refusal) throw refusal

      // The challenge's number only grows, past the last one accepted: one statement makes and returns it.
      const number = Number((await sql<{ number: string }>`insert into challenges (serial, number, code_hash, expires_at, issued_at)
        values (${input.serial}, ${(state.lastStep ?? 0) + 1}, ${codeHash(ctx, input.serial, code)}, ${expiresAt}, ${now})
        on conflict (serial) do update set number = greatest(challenges.number, ${state.lastStep ?? 0}) + 1, code_hash = excluded.code_hash,
          expires_at = excluded.expires_at, issued_at = excluded.issued_at
        returning number`.execute(trx)).rows[0]!.number)
      // The whole message (where to, and the text holding the code) is sealed in the job: the worker needs nothing else.
      const message = ctx.vault.seal(deliveryAad(input.serial, number), Buffer.from(JSON.stringify({ to, subject: 'Your sign-in code', text }), 'utf8'))
      // No notification: the page wakes this process's worker, and the others poll.
      const job = (await sql<{ id: string }>`
        insert into deliveries (serial, challenge, purpose, user_id, channel, destination_hash, source_ip, key_id, nonce, message, next_attempt_at, expires_at, created_at)
        values (${input.serial}, ${number}, ${input.purpose}, ${input.userId}, ${state.kind}, ${hash}, ${input.sourceIp}, ${message.keyId}, ${message.nonce}, ${message.ciphertext},
          ${now}, ${expiresAt}, ${now}) returning id`.execute(trx)).rows[0]!
      // The token's own write path: one statement, its row at the version read or a retry (as a verification).
      await appendTokenEvents({ ...ctx, db: trx }, state,
        [{ type: 'ChallengeIssued', data: { serial: input.serial, userId: input.userId, challenge: number, destination: state.destination ?? '', expiresAt: expiresAt.toISOString() } }], meta)
      // The whole gateway's sends this minute, last: only a code that is queued counts, and the one hot row
      // is locked only for the commit that follows (every issue on every process passes through it).
      const minute = new Date(Math.floor(now.getTime() / 60_000) * 60_000)
      const total = (await sql<{ sent: number }>`insert into send_budget (minute, sent) values (${minute}, 1)
        on conflict (minute) do update set sent = send_budget.sent + 1 returning sent`.execute(trx)).rows[0]!.sent
      if (total > limits.sendsPerMinute) throw new GatewayBusy()
      return { challenge: number, deliveryId: String(job.id) }
    })
    ctx.store.committed()
    return { serial: input.serial, ...result, expiresAt, destination: state.destination ?? '' }
  })
}

/** The check of a code against the method's newest challenge: valid while unexpired, its number as the step. */
export async function challengeCheck(ctx: Pick<CommandContext, 'db' | 'vault'>, serial: string, code: string, now: Date): Promise<OtpCheck> {
  const row = (await sql<{ number: string; code_hash: Buffer; expires_at: Date }>`
    select number, code_hash, expires_at from challenges where serial = ${serial}`.execute(ctx.db)).rows[0]
  if (!row || row.expires_at <= now || !/^\d{4,10}$/.test(code)) return { valid: false }
  const given = codeHash(ctx, serial, code)
  return timingSafeEqual(given, row.code_hash) ? { valid: true, step: Number(row.number), drift: 0 } : { valid: false }
}

export class NoContact extends TokenError {
  override name = 'NoContact'
  constructor(kind: SentKind) {
    super(kind === 'sms' ? 'The user has no mobile number. Set one first.' : 'The user has no email address. Set one first.')
  }
}

/**
 * An admin programs a phone or e-mail method for a user from their mobile number or address (Defender's
 * Token Programming Wizard): registered and active at once, as the admin vouches for the destination; the
 * user hears of it at their next sign-in and by e-mail. TokenRegistered, TokenActivated and
 * SignInMethodAdded in one transaction.
 */
export async function programSentCodeMethod(ctx: CommandContext, input: { userId: string; kind: SentKind }, meta: EventMetadata): Promise<TokenState> {
  const contact = await contactOf(ctx.db, input.userId)
  const destination = input.kind === 'sms' ? contact.mobile : contact.email
  if (!destination) throw new NoContact(input.kind)
  const registered = await registerSentCodeMethod(ctx, { ...input, destination, by: 'admin' }, meta)
  // The token's write path adds SignInMethodAdded (by the admin) and the user's notice in the same transaction.
  return retryOnConflict(async () => {
    const { state } = await loadToken(ctx.db, registered.serial)
    if (state.status === 'active') return state
    return writeTokenEvents(ctx, state, [{ type: 'TokenActivated', data: { serial: state.serial, userId: input.userId, step: 0, drift: 0 } }], meta)
  })
}
