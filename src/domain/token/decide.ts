// Token commands -> events. Pure: the OTP check, the time and the ids come in with the command.
import type { OtpCheck } from '../otp/otp.js'
import type { PolicySettings, SignInMethod } from '../policy/events.js'
import type { AssignedBy, RevocationReason, TokenEvent } from './events.js'
import {
  InvalidTokenName, NotAllowedByPolicy, SerialAlreadyInInventory, SerialUnavailable, TokenAlreadyActivated, TokenNotClaimed,
  ResyncFailed, RemoteServicePaused, RemoteUnavailable, TokenDisabledError, TokenLocked, TokenNotLocked, TokenRevokedError, TooManyAttempts, UnknownSerial, WrongCode,
  WrongTokenState, type TokenError,
} from './errors.js'
import type { TokenState } from './state.js'
import { kindOf } from '../../methods/index.js'

/** Wrong activation codes a token takes before it refuses further attempts (until an admin resets it). */
export const MAX_ACTIVATION_FAILURES = 5
/** Entra's activation window: +-1 minute for 30 s tokens and +-2 minutes for 60 s ones, 2 steps either way. */
export const ACTIVATION_WINDOW_STEPS = 2
export const HOTP_ACTIVATION_LOOK_AHEAD = 10

type ImportedData = Extract<TokenEvent, { type: 'TokenImported' }>['data']

/** The security policy's part in a sign-in decision: the owner's effective policy. */
export type VerificationPolicy = Pick<PolicySettings, 'methods' | 'digits' | 'lockThreshold' | 'lockSeconds'>

/**
 * What a remote service said about a code (methods/remote), for a credential another service checks:
 * - accepted or rejected: its answer, with its own word for it (recorded, never the code);
 * - replayed: the service was not asked, the code was accepted here before;
 * - unavailable: no usable answer (not counted against the user); paused: the service failed too often and
 *   is not asked for `seconds`.
 */
export type RemoteOutcome =
  | { outcome: 'accepted' | 'rejected' | 'replayed' | 'unavailable'; reason: string }
  | { outcome: 'paused'; reason: string; seconds: number }

/** The sign-in method a token is, as its kind says (methods/index.ts). */
export function methodOf(state: Pick<TokenState, 'kind'>): SignInMethod {
  return kindOf(state).policyMethod
}

/** Does the policy let this token be used (its kind of method; a hardware token's number of digits: an app's are always 6)? */
export function policyAllows(policy: Pick<PolicySettings, 'methods' | 'digits'>, state: TokenState): boolean {
  const method = methodOf(state)
  return policy.methods.includes(method) && (method !== 'hardware' || policy.digits.includes(state.digits))
}

export type TokenCommand =
  | { type: 'ImportToken'; data: ImportedData & { userId: string | null } }
  | { type: 'ActivateToken'; data: { userId: string; name: string; check: OtpCheck } }
  | {
      type: 'VerifyCode'
      data: {
        userId: string
        check: OtpCheck
        now: Date
        policy: VerificationPolicy
        relyingApplication: string | null
        level: string
        /** For a remote credential: what its service said (the check is valid when it accepted). */
        remote?: RemoteOutcome
      }
    }
  | { type: 'RenameToken'; data: { userId: string; name: string } }
  | { type: 'UnlockToken'; data: { now: Date } }
  | { type: 'AssignToken'; data: { userId: string } }
  | { type: 'DisableToken'; data: Record<string, never> }
  | { type: 'EnableToken'; data: Record<string, never> }
  /** first and second: the checks of the two codes; second.step must follow first.step. */
  | { type: 'ResyncToken'; data: { first: OtpCheck; second: OtpCheck; currentStep: number } }
  | { type: 'RevokeToken'; data: { reason: RevocationReason } }
  /** held: nobody may claim the token until an admin releases it (its user was deleted, the fob may be out there). */
  | { type: 'UnassignToken'; data: { userId: string; by: AssignedBy; held?: boolean } }
  | { type: 'ReleaseToken'; data: Record<string, never> }
  /** A software token's first code, checked against the seed the gateway made for it (methods/authenticator-app). */
  /** An admin gives a user a credential that another service checks; it is usable at once. */
  | { type: 'AssignRemoteCredential'; data: { userId: string; service: string; credential: string; digits: 6 | 8 } }
  | { type: 'CreateSoftwareToken'; data: Omit<Extract<TokenEvent, { type: 'SoftwareTokenCreated' }>['data'], 'serial' | 'kind'> & { name: string | null; check: OtpCheck } }

export interface Decision {
  events: TokenEvent[]
  /** Set when the command is refused; events may still record the attempt (a wrong code). */
  refusal: TokenError | null
}

const ok = (...events: TokenEvent[]): Decision => ({ events, refusal: null })

/** A revoked token's seed goes with it; a remote credential has none here to destroy. */
const secretDestroyed = (state: TokenState): TokenEvent[] =>
  state.kind === 'remote' ? [] : [{ type: 'TokenSecretDestroyed', data: { serial: state.serial, seedFingerprint: state.seedFingerprint } }]
const refuse = (refusal: TokenError, ...events: TokenEvent[]): Decision => ({ events, refusal })

export function normalizeName(name: string): string | null {
  const trimmed = name.replace(/\s+/g, ' ').trim()
  // Letters, digits, punctuation and spaces; no control characters.
  return trimmed.length >= 1 && trimmed.length <= 64 && !/[\p{Cc}\p{Cf}]/u.test(trimmed) ? trimmed : null
}

/**
 * May this user add this serial? The enrollment's first step asks, and activation asks again.
 * - An unknown serial and one that belongs to someone else get the same answer.
 * - A token already active on this user's account says so.
 */
export function checkClaim(state: TokenState, userId: string): TokenError | null {
  if (state.status === 'absent' || state.status === 'revoked') return new SerialUnavailable()
  if (state.userId !== null && state.userId !== userId) return new SerialUnavailable()
  // A token its user removed waits for an admin (or for that user): nobody else may claim it.
  if (state.heldFor !== null && state.heldFor !== userId) return new SerialUnavailable()
  if (state.status === 'active') return new TokenAlreadyActivated()
  const failures = state.status === 'inventory' ? state.claimFailures[userId] ?? 0 : state.activationFailures
  if (failures >= MAX_ACTIVATION_FAILURES) return new TooManyAttempts()
  return null
}

export function decide(state: TokenState, command: TokenCommand): Decision {
  switch (command.type) {
    case 'ImportToken': {
      if (state.status !== 'absent') return refuse(new SerialAlreadyInInventory(state.serial))
      const { userId, ...imported } = command.data
      const events: TokenEvent[] = [{ type: 'TokenImported', data: imported }]
      if (userId) events.push({ type: 'TokenAssigned', data: { serial: imported.serial, userId, by: 'import' } })
      return ok(...events)
    }
    case 'ActivateToken': {
      // - Only the owner, or anyone for an unassigned inventory token (the self-claim).
      // - A token takes MAX_ACTIVATION_FAILURES wrong codes, then refuses.
      // - A code is accepted once: a step at or below the last accepted one is a replay.
      const { userId, check } = command.data
      const claim = checkClaim(state, userId)
      if (claim) return refuse(claim)
      const name = normalizeName(command.data.name)
      if (!name) return refuse(new InvalidTokenName())
      const serial = state.serial
      if (!check.valid) {
        return refuse(new WrongCode(), { type: 'TokenActivationFailed', data: { serial, userId, reason: 'wrong-code' } })
      }
      if (state.lastStep !== null && check.step <= state.lastStep) {
        return refuse(new WrongCode(), { type: 'TokenActivationFailed', data: { serial, userId, reason: 'replayed' } })
      }
      const events: TokenEvent[] = []
      if (state.status === 'inventory') events.push({ type: 'TokenAssigned', data: { serial, userId, by: 'self' } })
      if (name !== state.name) events.push({ type: 'TokenRenamed', data: { serial, name } })
      events.push({ type: 'TokenActivated', data: { serial, userId, step: check.step, drift: check.drift } })
      return ok(...events)
    }
    case 'VerifyCode': {
      // - Only the owner's active token verifies; anything else is the same "unavailable".
      // - A locked token refuses even a right code, until the lock runs out.
      // - A token the owner's policy does not allow (its kind, its digits) refuses, without counting a failure.
      // - A time step (or counter) at or below the last accepted one is a replay.
      // - Wrong codes and replays count; at the policy's threshold the token locks, each lock twice as long.
      // - A remote service that gave no answer refuses without counting: the user did nothing wrong.
      const { userId, check, now, policy, remote } = command.data
      if (state.status !== 'active' || state.userId !== userId) return refuse(new SerialUnavailable())
      const serial = state.serial
      if (state.disabled) {
        return refuse(new TokenDisabledError(), { type: 'OtpRejected', data: { serial, userId, reason: 'disabled', failures: state.failures } })
      }
      if (state.lockedUntil && state.lockedUntil > now) {
        return refuse(new TokenLocked(state.lockedUntil), { type: 'OtpRejected', data: { serial, userId, reason: 'locked', failures: state.failures } })
      }
      if (!policyAllows(policy, state)) {
        return refuse(new NotAllowedByPolicy(), { type: 'OtpRejected', data: { serial, userId, reason: 'not-allowed', failures: state.failures } })
      }
      const said = remote ? { remote: remote.reason } : {}
      if (remote?.outcome === 'unavailable' || remote?.outcome === 'paused') {
        return refuse(remote.outcome === 'paused' ? new RemoteServicePaused(remote.seconds) : new RemoteUnavailable(),
          { type: 'OtpRejected', data: { serial, userId, reason: 'unavailable', failures: state.failures, ...said } })
      }
      const replayed = remote?.outcome === 'replayed' || (check.valid && state.lastStep !== null && check.step <= state.lastStep)
      if (!check.valid || replayed) {
        const failures = (state.lockedUntil ? 0 : state.failures) + 1
        const rejected: TokenEvent = { type: 'OtpRejected', data: { serial, userId, reason: replayed ? 'replayed' : 'wrong', failures, ...said } }
        if (failures < policy.lockThreshold) return refuse(new WrongCode(), rejected)
        const until = new Date(now.getTime() + policy.lockSeconds * 1000 * 2 ** state.lockCount)
        return refuse(new TokenLocked(until), rejected,
          { type: 'TokenLocked', data: { serial, until: until.toISOString(), failures, lockCount: state.lockCount + 1 } })
      }
      return ok({ type: 'OtpVerified', data: { serial, userId, step: check.step, drift: check.drift,
        relyingApplication: command.data.relyingApplication, level: command.data.level, ...said } })
    }
    case 'RenameToken': {
      if (state.status === 'absent' || state.userId !== command.data.userId) return refuse(new SerialUnavailable())
      if (state.status !== 'active') return refuse(new TokenNotClaimed())
      const name = normalizeName(command.data.name)
      if (!name) return refuse(new InvalidTokenName())
      if (name === state.name) return ok()
      return ok({ type: 'TokenRenamed', data: { serial: state.serial, name } })
    }
    case 'UnlockToken': {
      // - Only a token that is locked now (or refuses activation after too many wrong codes) unlocks.
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      const locked = (state.lockedUntil !== null && state.lockedUntil > command.data.now) || state.activationFailures >= MAX_ACTIVATION_FAILURES
        || Object.values(state.claimFailures).some((n) => n >= MAX_ACTIVATION_FAILURES)
      if (!locked) return refuse(new TokenNotLocked(state.serial))
      return ok({ type: 'TokenUnlocked', data: { serial: state.serial } })
    }
    case 'AssignToken': {
      // - Only an inventory token is assigned; a token of someone else's is unassigned first.
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      if (state.status !== 'inventory') return refuse(new WrongTokenState(`token ${state.serial} is already assigned; unassign it first`))
      return ok({ type: 'TokenAssigned', data: { serial: state.serial, userId: command.data.userId, by: 'admin' } })
    }
    case 'DisableToken':
    case 'EnableToken': {
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      const disable = command.type === 'DisableToken'
      if (state.disabled === disable) return refuse(new WrongTokenState(`token ${state.serial} is already ${disable ? 'disabled' : 'enabled'}`))
      return ok({ type: disable ? 'TokenDisabled' : 'TokenEnabled', data: { serial: state.serial } })
    }
    case 'ResyncToken': {
      // - Two codes, the second right after the first: proof of possession even far out of the window.
      // - The later step must be newer than the last accepted one (no replay through a resync).
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      if (state.status !== 'active') return refuse(new WrongTokenState(`token ${state.serial} is not activated`))
      const { first, second, currentStep } = command.data
      if (!first.valid || !second.valid || second.step !== first.step + 1) return refuse(new ResyncFailed())
      if (state.lastStep !== null && first.step <= state.lastStep) return refuse(new ResyncFailed())
      return ok({ type: 'TokenResynced', data: { serial: state.serial, step: second.step, drift: second.step - currentStep } })
    }
    case 'RevokeToken': {
      // - Permanent; the seed is destroyed in the same change, the history stays.
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      return ok({ type: 'TokenRevoked', data: { serial: state.serial, reason: command.data.reason } }, ...secretDestroyed(state))
    }
    case 'UnassignToken': {
      if (state.status === 'absent' || state.userId !== command.data.userId) return refuse(new SerialUnavailable())
      // A software token's key was made for one person and shown to them, a remote credential was given to
      // one person: neither goes back to the inventory. Taken from its user, it is retired (and a key destroyed).
      if (state.kind === 'software' || state.kind === 'remote') {
        if (state.status === 'revoked') return refuse(new SerialUnavailable())
        return ok({ type: 'TokenRevoked', data: { serial: state.serial, reason: 'retired' } }, ...secretDestroyed(state))
      }
      return ok({ type: 'TokenUnassigned', data: { serial: state.serial, userId: command.data.userId, by: command.data.by, ...(command.data.held ? { held: true as const } : {}) } })
    }
    case 'ReleaseToken': {
      // - Only a token its user removed (held for them) is released, back to the claimable inventory.
      if (state.status === 'absent') return refuse(new UnknownSerial(state.serial))
      if (state.status === 'revoked') return refuse(new TokenRevokedError(state.serial))
      if (state.heldFor === null) return refuse(new WrongTokenState(`token ${state.serial} is not waiting to be released`))
      return ok({ type: 'TokenReleased', data: { serial: state.serial } })
    }
    case 'AssignRemoteCredential': {
      // - A new serial only; usable at once (the remote service vouches for the credential, an admin for its holder).
      if (state.status !== 'absent') return refuse(new SerialAlreadyInInventory(state.serial))
      const { userId, service, credential, digits } = command.data
      return ok({ type: 'RemoteCredentialAssigned', data: { serial: state.serial, kind: 'remote', userId, service, credential, digits, by: 'admin' } })
    }
    case 'CreateSoftwareToken': {
      // - A new serial only; the first code must match (it proves the app holds the key); it is active at once.
      // - A wrong code writes nothing here: there is no token yet (the set-up counts it).
      if (state.status !== 'absent') return refuse(new SerialAlreadyInInventory(state.serial))
      const { check, name, ...created } = command.data
      if (!check.valid) return refuse(new WrongCode())
      const serial = state.serial
      const events: TokenEvent[] = [{ type: 'SoftwareTokenCreated', data: { serial, kind: 'software', ...created } }]
      if (name !== null) {
        const normalized = normalizeName(name)
        if (!normalized) return refuse(new InvalidTokenName())
        events.push({ type: 'TokenRenamed', data: { serial, name: normalized } })
      }
      events.push({ type: 'TokenActivated', data: { serial, userId: created.userId, step: check.step, drift: check.drift } })
      return ok(...events)
    }
    default: {
      const unknown: never = command
      throw new Error(`unknown token command ${(unknown as { type: string }).type}`)
    }
  }
}
