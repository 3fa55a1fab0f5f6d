// A token's state, folded from its events. The inline read model `tokens` stores exactly this.
import type { OtpAlgorithm } from '../otp/otp.js'
import type { TokenEvent } from './events.js'

export type TokenStatus = 'absent' | 'inventory' | 'assigned' | 'active' | 'revoked'

export interface TokenState {
  serial: string
  status: TokenStatus
  /**
   * totp, hotp: a hardware token's OTP algorithm; software: an authenticator app's TOTP key
   * (methods/authenticator-app); sms, email: codes are sent (methods/sent-code); remote: another service
   * checks the codes (methods/remote).
   */
  kind: 'totp' | 'hotp' | 'software' | 'sms' | 'email' | 'remote'
  /** Where codes are sent, masked ("+44 ••• ••• 789"), for a method that is sent codes. */
  destination: string | null
  /** A remote credential's service (its id) and its id there; null for every other kind. */
  remoteService: string | null
  remoteCredential: string | null
  algorithm: OtpAlgorithm
  digits: 6 | 8
  period: number | null
  /** HOTP: the next counter expected. */
  counter: number | null
  manufacturer: string | null
  model: string | null
  userId: string | null
  name: string | null
  /** The last accepted time step (TOTP) or counter (HOTP): nothing at or below it is accepted again. */
  lastStep: number | null
  drift: number
  /** Wrong activation codes by its owner since the token was assigned. */
  activationFailures: number
  /**
   * Wrong activation codes on this inventory token, per user who tried to claim it: one user's guesses
   * do not use up its real holder's attempts.
   */
  claimFailures: Record<string, number>
  /** The user who removed it from their methods; until an admin releases it, only they can add it again. */
  heldFor: string | null
  /** Consecutive wrong codes at sign-in; a success resets it. */
  failures: number
  lockedUntil: Date | null
  /** An admin switched it off; it refuses every code until enabled again. */
  disabled: boolean
  /** How often it locked since the last success: each lock lasts twice as long as the one before. */
  lockCount: number
  lastUsedAt: Date | null
  /** Known while the seed exists; cleared when it is destroyed. */
  seedFingerprint: string | null
  activatedAt: Date | null
  importedAt: Date | null
  version: number
}

/** How a token's codes are computed from its seed: TOTP, HOTP, or not at all (codes that are sent). */
export function otpTypeOf(state: Pick<TokenState, 'kind'>): 'totp' | 'hotp' | null {
  if (state.kind === 'totp' || state.kind === 'software') return 'totp'
  return state.kind === 'hotp' ? 'hotp' : null
}

export function initialState(serial: string): TokenState {
  return {
    serial, status: 'absent', kind: 'totp', destination: null, remoteService: null, remoteCredential: null, algorithm: 'SHA1', digits: 6, period: 30, counter: null,
    manufacturer: null, model: null, userId: null, name: null, lastStep: null, drift: 0,
    activationFailures: 0, claimFailures: {}, heldFor: null, failures: 0, lockedUntil: null, disabled: false, lockCount: 0, lastUsedAt: null, seedFingerprint: null, activatedAt: null,
    importedAt: null, version: 0,
  }
}

export function evolve(state: TokenState, event: TokenEvent, at: Date): TokenState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'TokenImported': {
      const d = event.data
      return { ...next, status: 'inventory', kind: d.kind, algorithm: d.algorithm, digits: d.digits, period: d.period,
        counter: d.counter, manufacturer: d.manufacturer, model: d.model, importedAt: at, seedFingerprint: d.seedFingerprint }
    }
    case 'TokenAssigned':
      return { ...next, status: 'assigned', userId: event.data.userId, activationFailures: 0, claimFailures: {}, heldFor: null }
    case 'TokenUnassigned':
      return { ...next, status: 'inventory', userId: null, name: null, activationFailures: 0, claimFailures: {}, activatedAt: null,
        failures: 0, lockedUntil: null, lockCount: 0, heldFor: event.data.by === 'self' || event.data.held ? event.data.userId : null }
    case 'TokenReleased':
      return { ...next, heldFor: null }
    case 'TokenRegistered':
      return { ...next, status: 'assigned', kind: event.data.kind, destination: event.data.destination, digits: event.data.digits as 6 | 8,
        algorithm: 'SHA1', period: null, counter: null, userId: event.data.userId, seedFingerprint: event.data.fingerprint, importedAt: at }
    case 'SoftwareTokenCreated': {
      const d = event.data
      return { ...next, status: 'assigned', kind: 'software', algorithm: d.algorithm, digits: d.digits, period: d.period, counter: null,
        userId: d.userId, seedFingerprint: d.seedFingerprint, importedAt: at }
    }
    case 'RemoteCredentialAssigned': {
      const d = event.data
      return { ...next, status: 'active', kind: 'remote', remoteService: d.service, remoteCredential: d.credential, digits: d.digits,
        algorithm: 'SHA1', period: null, counter: null, userId: d.userId, seedFingerprint: null, importedAt: at, activatedAt: at }
    }
    case 'ChallengeIssued':
    case 'DeliveryAttempted':
    case 'CodeDelivered':
    case 'ChallengeUndelivered':
      return next
    case 'TokenRenamed':
      return { ...next, name: event.data.name }
    case 'TokenActivated':
      return { ...next, status: 'active', lastStep: event.data.step, drift: event.data.drift, activatedAt: at, lastUsedAt: at,
        counter: state.kind === 'hotp' ? event.data.step + 1 : state.counter }
    case 'OtpVerified':
      return { ...next, lastStep: event.data.step, drift: event.data.drift, failures: 0, lockCount: 0, lockedUntil: null,
        lastUsedAt: at, counter: state.kind === 'hotp' ? event.data.step + 1 : state.counter }
    case 'OtpRejected':
      // A refusal while locked does not count: the lock already answers for it. Otherwise decide has
      // counted (a lock that ran out starts afresh): the event says so, so replay needs no clock.
      if (event.data.reason === 'locked' || event.data.reason === 'disabled' || event.data.reason === 'unavailable') return next
      return { ...next, failures: event.data.failures, lockedUntil: null }
    case 'TokenLocked':
      return { ...next, lockedUntil: new Date(event.data.until), lockCount: event.data.lockCount, failures: 0 }
    case 'TokenUnlocked':
      return { ...next, lockedUntil: null, failures: 0, lockCount: 0, activationFailures: 0, claimFailures: {} }
    case 'TokenDisabled':
      return { ...next, disabled: true }
    case 'TokenEnabled':
      return { ...next, disabled: false }
    case 'TokenResynced':
      return { ...next, lastStep: event.data.step, drift: event.data.drift, failures: 0, lockedUntil: null, lockCount: 0,
        counter: state.kind === 'hotp' ? event.data.step + 1 : state.counter }
    case 'TokenRevoked':
      return { ...next, status: 'revoked', lockedUntil: null }
    case 'TokenSecretDestroyed':
      return { ...next, seedFingerprint: null }
    case 'TokenActivationFailed': {
      if (state.status !== 'inventory') return { ...next, activationFailures: state.activationFailures + 1 }
      const userId = event.data.userId
      return { ...next, claimFailures: { ...state.claimFailures, [userId]: (state.claimFailures[userId] ?? 0) + 1 } }
    }
    default: {
      const unknown: never = event
      throw new Error(`unknown token event ${(unknown as { type: string }).type}`)
    }
  }
}
