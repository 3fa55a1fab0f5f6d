// Token commands for the user: may I add this serial, activate it with its first code, rename, remove.
// Each loads the token's row (state + version + sealed seed) in one round trip, decides with the pure
// domain, and appends with the expected version; another writer first means reload and decide again.
import { checkHotp, checkTotp, type OtpCheck } from '../domain/otp/otp.js'
import {
  ACTIVATION_WINDOW_STEPS, checkClaim, decide, HOTP_ACTIVATION_LOOK_AHEAD, policyAllows, type RemoteOutcome, type TokenCommand,
} from '../domain/token/decide.js'
import { NotAllowedByPolicy, RemoteServicePaused, RemoteUnavailable, SerialUnavailable, TokenError, TokenLocked, WrongCode, WrongTokenState } from '../domain/token/errors.js'
import type { RevocationReason } from '../domain/token/events.js'
import type { TokenState } from '../domain/token/state.js'
import type { PolicySettings } from '../domain/policy/events.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import type { EventMetadata } from '../event-store/types.js'
import { effectivePolicy } from '../read-models/policies.js'
import { loadToken, activeTokensOfUser } from '../read-models/tokens.js'
import { appendTokenEvents } from './token-writer.js'
import { appendStreamsWithProjections } from './append.js'
import { tokenStream, type TokenEvent } from '../domain/token/events.js'
import { evolve, otpTypeOf } from '../domain/token/state.js'
import { userStream, type MethodChangedBy, type UserEvent } from '../domain/user/events.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'
import { sql } from 'kysely'
import type { Executor } from '../read-models/database.js'
import { challengeCheck, isSentCode } from '../methods/sent-code/challenge.js'
import { kindOf, methodName } from '../methods/index.js'
import { methodChangeNotice, queueNotice } from './contacts.js'
import { endSoftwareRequests } from '../methods/authenticator-app/requests.js'
import { remoteCheck } from '../methods/remote/credentials.js'
import { locks, verifications } from '../metrics.js'

/** A method in a sentence: "Phone (+44 ••• ••• 456)", "Hardware token Token2 C202 (serial 123)". */
function describeMethod(t: TokenState): string {
  if (t.destination) return `${kindOf(t).label} (${t.destination})`
  const label = kindOf(t).label
  const name = methodName(t)
  return `${name.startsWith(label) ? name : `${label} ${name}`} (serial ${t.serial})`
}

/** Too many hardware and software OTP methods for the user's policy (Entra's default: five). */
export class TooManyMethods extends TokenError {
  override name = 'TooManyMethods'
  constructor(max: number) {
    super(`You already have ${max} authenticator ${max === 1 ? 'method' : 'methods'}. Remove one before adding another.`)
  }
}

const SERIAL = /^[A-Za-z0-9._-]{1,64}$/

/**
 * The enrollment's first step: may this user add this serial? Throws the reason when not.
 * - The serial must be claimable (one answer for unknown and foreign serials).
 * - The user's effective policy must allow the token (its kind, its digits) and one more method.
 */
export async function checkSerial(
  ctx: Pick<CommandContext, 'db'>, serial: string, userId: string, options: { assignedOnly?: boolean } = {},
): Promise<TokenState> {
  if (!SERIAL.test(serial)) throw new SerialUnavailable()
  const [{ state }, policy, methods] = await Promise.all([loadToken(ctx.db, serial), effectivePolicy(ctx.db, userId), activeTokensOfUser(ctx.db, userId)])
  const refusal = checkClaim(state, userId)
  if (refusal) throw refusal
  // A user who needs an admin's help may only activate what an admin assigned to them (one answer for the rest).
  if (options.assignedOnly && !(state.status === 'assigned' && state.userId === userId)) throw new SerialUnavailable()
  if (!policyAllows(policy.settings, state)) throw new NotAllowedByPolicy()
  if (methods.length >= policy.settings.maxMethods) throw new TooManyMethods(policy.settings.maxMethods)
  return state
}

async function run(
  ctx: CommandContext,
  serial: string,
  meta: EventMetadata,
  command: (state: TokenState, seed: () => Buffer, policy: PolicySettings) => TokenCommand | Promise<TokenCommand>,
): Promise<TokenState> {
  if (!SERIAL.test(serial)) throw new SerialUnavailable()
  for (let attempt = 0; ; attempt++) {
    // One round trip to read (state, version, sealed seed), one to write.
    const { state, sealed, policy } = await loadToken(ctx.db, serial)
    const seed = () => {
      if (!sealed) throw new SerialUnavailable()
      return ctx.vault.open(serial, sealed)
    }
    const decided = await command(state, seed, policy)
    const decision = decide(state, decided)
    let after = state
    if (decision.events.length > 0) {
      try {
        after = await writeTokenEvents(ctx, state, decision.events, meta)
      } catch (error) {
        if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
        throw error
      }
    }
    if (decided.type === 'VerifyCode') {
      const method = state.status === 'absent' ? 'unknown' : kindOf(state).policyMethod
      verifications.inc({ method, result: decision.refusal ? decision.refusal.name : 'accepted' })
      if (decision.events.some((e) => e.type === 'TokenLocked')) locks.inc({ method })
    }
    if (decision.refusal) throw decision.refusal
    return after
  }
}

/**
 * A token's events at the version `before` holds: with the user's SignInMethodAdded or Removed (and its
 * notice) in one transaction when they make the token a usable method or stop it being one; otherwise the
 * one-statement write of the hot path.
 */
export async function writeTokenEvents(ctx: CommandContext, before: TokenState, events: readonly TokenEvent[], meta: EventMetadata): Promise<TokenState> {
  const change = methodChange(before, events, meta)
  return change ? appendWithMethodChange(ctx, before, events, change, meta) : appendTokenEvents(ctx, before, events, meta)
}

/** The token events that can make a token a usable method or stop it being one (not a verification's). */
const ACTIVENESS_EVENTS: ReadonlySet<TokenEvent['type']> = new Set(['TokenActivated', 'TokenUnassigned', 'TokenRevoked', 'RemoteCredentialAssigned'])

/**
 * The user event that goes with token events which make a token a usable sign-in method of its user, or
 * stop it being one (removed, unassigned, revoked), or null. Verification never changes that, so the hot
 * path keeps its one-statement write.
 */
export function methodChange(before: TokenState, events: readonly TokenEvent[], meta: EventMetadata): UserEvent | null {
  if (!events.some((e) => ACTIVENESS_EVENTS.has(e.type))) return null
  let after = before
  for (const e of events) after = evolve(after, e, new Date(0))
  const by: MethodChangedBy = meta.actor.type === 'user' ? 'self' : 'admin'
  if (before.status !== 'active' && after.status === 'active' && after.userId) {
    return { type: 'SignInMethodAdded', data: { userId: after.userId, serial: before.serial, by } }
  }
  if (before.status === 'active' && after.status !== 'active' && before.userId) {
    return { type: 'SignInMethodRemoved', data: { userId: before.userId, serial: before.serial, by } }
  }
  return null
}

/**
 * Room for one more method under the user's policy (maxMethods), counted under a per-user lock held to the
 * commit: of two methods added at once on any process, the second sees the first.
 */
async function assertRoomForMethod(trx: Executor, userId: string, serial: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`methods:${userId}`}))`.execute(trx)
  const [active, policy] = await Promise.all([activeTokensOfUser(trx, userId), effectivePolicy(trx, userId)])
  if (active.filter((t) => t.serial !== serial).length >= policy.settings.maxMethods) throw new TooManyMethods(policy.settings.maxMethods)
}

/**
 * In the caller's transaction: the token's events (from `expected`), the user's event, a destroyed seed's
 * row, and the user's notice (sent if and only if this commits); a method added is counted first.
 */
export async function writeWithMethodChange(
  ctx: CommandContext, before: TokenState, events: readonly TokenEvent[], change: UserEvent, meta: EventMetadata,
  expected: number | 'no-stream' = before.version,
) {
  const d = change.data as { userId: string; by: string }
  if (change.type === 'SignInMethodAdded') await assertRoomForMethod(ctx.db, d.userId, before.serial)
  // A method removed ends the activation codes the user asked for themselves: one of them must not outlive
  // the methods that vouched for it (an admin's code stands).
  const ended = change.type === 'SignInMethodRemoved' ? await endSoftwareRequests(ctx.db, d.userId, 'method-removed', { selfOnly: true }) : []
  const [token] = await appendStreamsWithProjections({ ...ctx, deferCommit: true }, [
    { streamId: tokenStream(before.serial), expected, events },
    { streamId: userStream(d.userId), expected: 'any', events: [change, ...ended] },
  ], meta)
  if (events.some((e) => e.type === 'TokenSecretDestroyed')) await sql`delete from token_secrets where serial = ${before.serial}`.execute(ctx.db)
  let after = before
  for (const e of events) after = evolve(after, e, new Date(0))
  const notice = methodChangeNotice({ added: change.type === 'SignInMethodAdded', method: describeMethod(change.type === 'SignInMethodAdded' ? after : before), byAdmin: d.by === 'admin', sourceIp: meta.sourceIp, at: ctx.now() })
  await queueNotice(ctx.db, ctx.vault, { userId: d.userId, ...notice, now: ctx.now() })
  return token!
}

/** The token's events and the user's event in one transaction: both or neither (and a revoked seed with them). */
async function appendWithMethodChange(
  ctx: CommandContext, before: TokenState, events: readonly TokenEvent[], change: UserEvent, meta: EventMetadata,
): Promise<TokenState> {
  const written = await ctx.db.transaction().execute((trx) => writeWithMethodChange({ ...ctx, db: trx }, before, events, change, meta))
  ctx.store.committed()
  let after = before
  for (const e of written.events) after = evolve(after, { type: e.type, data: e.data } as TokenEvent, e.recordedAt)
  return after
}

export const HOTP_LOOK_AHEAD = 10

/**
 * A command on a new token, decided and written in one transaction after `inside` ran in it (a lock, a check
 * that must hold at the commit): a remote credential given to a user.
 */
export async function decideOn(
  ctx: CommandContext, serial: string, meta: EventMetadata, command: TokenCommand, inside: (trx: Executor) => Promise<void>,
): Promise<TokenState> {
  if (!SERIAL.test(serial)) throw new SerialUnavailable()
  const { state } = await loadToken(ctx.db, serial)
  const decision = decide(state, command)
  if (decision.refusal) throw decision.refusal
  const change = methodChange(state, decision.events, meta)
  const expected = state.version === 0 ? 'no-stream' as const : state.version
  const written = await ctx.db.transaction().execute(async (trx) => {
    await inside(trx)
    if (change) return writeWithMethodChange({ ...ctx, db: trx }, state, decision.events, change, meta, expected)
    const [token] = await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, [{ streamId: tokenStream(serial), expected, events: decision.events }], meta)
    return token!
  })
  ctx.store.committed()
  let after = state
  for (const e of written.events) after = evolve(after, { type: e.type, data: e.data } as TokenEvent, e.recordedAt)
  return after
}

/**
 * Checks a code against the token's seed; the seed is wiped from memory at once.
 * window: TOTP steps either side of now; lookAhead: HOTP counters ahead of the stored one.
 */
export function checkCode(state: TokenState, seed: Buffer, code: string, nowSeconds: number, window: { steps: number; lookAhead: number }): OtpCheck {
  try {
    const type = otpTypeOf(state)
    if (type === 'hotp') return checkHotp(seed, { ...state, kind: 'hotp' }, code, state.counter ?? 0, window.lookAhead)
    if (type === 'totp') return checkTotp(seed, { ...state, kind: 'totp' }, code, nowSeconds, window.steps, state.drift)
    // A method codes are sent to has no seed to compute them from: its challenge says (codeCheck).
    return { valid: false }
  } finally {
    seed.fill(0)
  }
}

/** What a code check found: the OTP check, and for a remote credential what its service said. */
type Checked = { check: OtpCheck; remote?: RemoteOutcome }

/**
 * The check of a code for a token, as its kind says (methods/kind.ts `verification`): against its seed
 * (wiped at once), against the newest challenge sent to it, or asked of its remote service (`memo` keeps
 * that answer for the whole verification, so a write retried after a conflict does not ask again).
 */
async function codeCheck(ctx: CommandContext, state: TokenState, seed: () => Buffer, code: string, window: { steps: number; lookAhead: number },
  memo: Map<string, RemoteOutcome>): Promise<Checked> {
  switch (kindOf(state).verification) {
    case 'seed': return { check: checkCode(state, seed(), code, ctx.now().getTime() / 1000, window) }
    case 'challenge': return { check: await challengeCheck(ctx, state.serial, code, ctx.now()) }
    case 'remote': return remoteCheck(ctx, state, code, memo)
  }
}

/**
 * Sign-in and step-up: the user proves possession of one of their active tokens, under the owner's
 * effective policy (window, lock threshold and period, allowed methods and digits), read with the token.
 * A locked, foreign or disallowed token is refused before its seed is decrypted.
 */
export async function verifyCode(
  ctx: CommandContext,
  input: { serial: string; userId: string; code: string; relyingApplication?: string | null; level?: string },
  meta: EventMetadata,
  memo = new Map<string, RemoteOutcome>(),
): Promise<TokenState> {
  return run(ctx, input.serial, meta, async (state, seed, policy) => {
    const now = ctx.now()
    const usable = state.status === 'active' && state.userId === input.userId && !state.disabled && !(state.lockedUntil && state.lockedUntil > now)
      && policyAllows(policy, state)
    const { check, remote } = usable
      ? await codeCheck(ctx, state, seed, input.code.trim(), { steps: policy.totpWindow, lookAhead: HOTP_LOOK_AHEAD }, memo)
      : { check: { valid: false as const }, remote: undefined }
    return {
      type: 'VerifyCode',
      data: { userId: input.userId, check, now, policy, relyingApplication: input.relyingApplication ?? null, level: input.level ?? 'mfa', ...(remote ? { remote } : {}) },
    }
  })
}

/**
 * Sign-in and step-up without choosing a token (as Entra and privacyIDEA do): the code is checked against
 * each of the user's active tokens; the one it matches is the one used (and a replay on it is refused as
 * such). A code that matches none counts as a failure on every token it could have come from, in one
 * statement (group commit), so no innocent token locks before the others.
 * Returns the token used; throws the refusal (the lock when every token is locked).
 */
export async function verifyCodeFromAny(
  ctx: CommandContext,
  input: { userId: string; code: string; relyingApplication?: string | null; level?: string; only?: (token: TokenState) => boolean },
  meta: EventMetadata,
): Promise<TokenState> {
  const code = input.code.trim()
  const now = ctx.now()
  const candidates = (await activeTokensOfUser(ctx.db, input.userId))
    .filter((t) => String(t.digits) === String(code.length) && (!input.only || input.only(t)))
  if (candidates.length === 0) throw new WrongCode()
  const memo = new Map<string, RemoteOutcome>()
  const isRemote = (t: TokenState) => kindOf(t).verification === 'remote'
  // The user's own methods first. A code that matches one of them, usable or not (locked, disabled), is
  // never sent to a remote service: it is not the service's to see.
  let matchedHere = false
  for (const candidate of candidates.filter((t) => !isRemote(t))) {
    const { state, sealed, policy } = await loadToken(ctx.db, candidate.serial)
    if (state.status !== 'active' || state.userId !== input.userId || sealed === null) continue
    const { check } = await codeCheck(ctx, state, () => ctx.vault.open(state.serial, sealed), code, { steps: policy.totpWindow, lookAhead: HOTP_LOOK_AHEAD }, memo)
    if (!check.valid) continue
    matchedHere = true
    const usable = !state.disabled && !(state.lockedUntil && state.lockedUntil > now) && policyAllows(policy, state)
    if (usable) return verifyCode(ctx, { ...input, serial: state.serial }, meta, memo)
  }
  // Nothing here took it: every method it could be for decides (a wrong code counts on each, in one
  // statement), remote credentials by asking their service, unless it matched a method of this gateway's.
  const asked = matchedHere ? candidates.filter((t) => !isRemote(t)) : candidates
  const results = await Promise.allSettled(asked.map((t) => verifyCode(ctx, { ...input, serial: t.serial }, meta, memo)))
  // A token accepted the code after all (it changed between the check and the write): it was used.
  const used = results.find((r) => r.status === 'fulfilled')
  if (used) return (used as PromiseFulfilledResult<TokenState>).value
  const errors = results.map((r) => (r as PromiseRejectedResult).reason)
  const other = errors.find((e) => !(e instanceof TokenError))
  if (other) throw other
  // Every token locked: say when the first one opens. A service that could not check the code: say so
  // (the code may have been for it). Otherwise the code was wrong.
  const locks = errors.filter((e): e is TokenLocked => e instanceof TokenLocked)
  if (locks.length === errors.length) throw locks.sort((a, b) => a.until.getTime() - b.until.getTime())[0]!
  const unanswered = errors.find((e) => e instanceof RemoteUnavailable || e instanceof RemoteServicePaused)
  if (unanswered) throw unanswered
  throw new WrongCode()
}

/** The enrollment's last step: the first code activates the token (and claims it, when unassigned). */
export async function activateToken(
  ctx: CommandContext,
  input: { serial: string; userId: string; name: string; code: string; assignedOnly?: boolean },
  meta: EventMetadata,
): Promise<TokenState> {
  await checkSerial(ctx, input.serial, input.userId, { assignedOnly: input.assignedOnly })
  return run(ctx, input.serial, meta, async (state, seed) => {
    // No decryption for a token the user may not activate: decide refuses before looking at the code.
    if (input.assignedOnly && !(state.status === 'assigned' && state.userId === input.userId)) throw new SerialUnavailable()
    const claimable = checkClaim(state, input.userId) === null && kindOf(state).verification !== 'remote'
    const check = claimable
      ? (await codeCheck(ctx, state, seed, input.code.trim(), { steps: ACTIVATION_WINDOW_STEPS, lookAhead: HOTP_ACTIVATION_LOOK_AHEAD }, new Map())).check
      : { valid: false as const }
    return { type: 'ActivateToken', data: { userId: input.userId, name: input.name, check } }
  })
}

export async function renameToken(ctx: CommandContext, input: { serial: string; userId: string; name: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'RenameToken', data: { userId: input.userId, name: input.name } }))
}

export async function removeToken(ctx: CommandContext, input: { serial: string; userId: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'UnassignToken', data: { userId: input.userId, by: 'self' } }))
}

/** Admin: unlock a token locked by wrong codes, and reset its counts. */
export async function unlockToken(ctx: CommandContext, input: { serial: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'UnlockToken', data: { now: ctx.now() } }))
}

/** Admin: revoke a token for good; its seed is destroyed in the same statement (crypto-shredding). */
export async function revokeToken(ctx: CommandContext, input: { serial: string; reason: RevocationReason }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'RevokeToken', data: { reason: input.reason } }))
}

/** Admin: release a token its user removed, back to the claimable inventory. */
export async function releaseToken(ctx: CommandContext, input: { serial: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'ReleaseToken', data: {} }))
}

/** Admin: assign an inventory token to a user. */
export async function assignToken(ctx: CommandContext, input: { serial: string; userId: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'AssignToken', data: { userId: input.userId } }))
}

/** Admin: take a token from its user, back to the inventory. */
export async function unassignToken(ctx: CommandContext, input: { serial: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, (state) => {
    if (!state.userId) throw new WrongTokenState(`token ${input.serial} is not assigned`)
    return { type: 'UnassignToken', data: { userId: state.userId, by: 'admin' } }
  })
}

export async function disableToken(ctx: CommandContext, input: { serial: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'DisableToken', data: {} }))
}

export async function enableToken(ctx: CommandContext, input: { serial: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, () => ({ type: 'EnableToken', data: {} }))
}

/** How far a resync searches: a token whose clock drifted up to about 8 hours (30 s steps). */
export const RESYNC_WINDOW_STEPS = 1000

/** Admin: resynchronise a drifted token with two consecutive codes read off it. */
export async function resyncToken(ctx: CommandContext, input: { serial: string; first: string; second: string }, meta: EventMetadata) {
  return run(ctx, input.serial, meta, (state, seed) => {
    const nowSeconds = ctx.now().getTime() / 1000
    const currentStep = state.kind === 'hotp' ? state.counter ?? 0 : Math.floor(nowSeconds / (state.period ?? 30))
    // Only a token that computes its codes has a clock or counter to drift (a fob, a phone's app).
    const type = otpTypeOf(state)
    if (state.status !== 'active' || type === null) {
      return { type: 'ResyncToken', data: { first: { valid: false }, second: { valid: false }, currentStep } }
    }
    const otp = { ...state, kind: type }
    const key = seed()
    try {
      const first = otp.kind === 'hotp'
        ? checkHotp(key, otp, input.first.trim(), state.counter ?? 0, RESYNC_WINDOW_STEPS)
        : checkTotp(key, otp, input.first.trim(), nowSeconds, RESYNC_WINDOW_STEPS)
      let second: OtpCheck = { valid: false }
      if (first.valid) {
        const next = otp.kind === 'hotp'
          ? checkHotp(key, otp, input.second.trim(), first.step + 1, 0)
          : checkTotp(key, otp, input.second.trim(), (first.step + 1) * (state.period ?? 30), 0)
        if (next.valid) second = { valid: true, step: first.step + 1, drift: next.drift }
      }
      return { type: 'ResyncToken', data: { first, second, currentStep } }
    } finally {
      key.fill(0)
    }
  })
}
