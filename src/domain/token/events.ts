// Everything that can happen to a token, in the past tense. Stream: token-<serial>.
// No seed appears here: TokenImported carries a keyed fingerprint of it.
import type { OtpAlgorithm } from '../otp/otp.js'

export type AssignedBy = 'import' | 'self' | 'admin'

export type TokenEvent =
  | {
      type: 'TokenImported'
      data: {
        serial: string
        kind: 'totp' | 'hotp'
        algorithm: OtpAlgorithm
        digits: 6 | 8
        period: number | null
        counter: number | null
        manufacturer: string | null
        model: string | null
        seedFingerprint: string
        source: 'entra-csv' | 'oath-csv' | 'pskc'
      }
    }
  /**
   * A method that is sent codes (a phone or an e-mail address) was registered for a user, not yet
   * activated: destination is masked ("+44 ••• ••• 789"); the full one is sealed with the token's secrets.
   */
  /**
   * A software token (an authenticator app's TOTP key) was made for a user and proven with its first code:
   * its seed came from the gateway (sealed in token_secrets, seedFingerprint here). by: who set it up;
   * activationCode: the activation code it was redeemed with, if any.
   */
  | { type: 'SoftwareTokenCreated'; data: { serial: string; kind: 'software'; userId: string; algorithm: OtpAlgorithm; digits: 6 | 8; period: number;
      seedFingerprint: string; by: AssignedBy; activationCode: string | null } }
  /**
   * A credential that another service checks (methods/remote) was assigned to a user by an admin, usable at
   * once: service is the remote service's id, credential its id there (a VIP credential id, a RADIUS user name).
   * No seed exists on this side.
   */
  | { type: 'RemoteCredentialAssigned'; data: { serial: string; kind: 'remote'; userId: string; service: string; credential: string; digits: 6 | 8; by: AssignedBy } }
  | { type: 'TokenRegistered'; data: { serial: string; kind: 'sms' | 'email'; userId: string; destination: string; digits: number; fingerprint: string; by: AssignedBy } }
  /** A code was made for the method and handed to the delivery pipeline; challenge numbers only grow. The code is never here. */
  | { type: 'ChallengeIssued'; data: { serial: string; userId: string; challenge: number; destination: string; expiresAt: string } }
  /** One try at handing a challenge's message to a provider. */
  | { type: 'DeliveryAttempted'; data: { serial: string; challenge: number; provider: string; result: 'accepted' | 'refused' | 'timeout'; messageId: string | null; error: string | null } }
  /** The provider reported the message delivered (an SMPP receipt, Kannel's dlr-url). */
  | { type: 'CodeDelivered'; data: { serial: string; challenge: number; provider: string; messageId: string } }
  /** No provider took the message while the code was valid. */
  | { type: 'ChallengeUndelivered'; data: { serial: string; challenge: number; reason: 'expired' | 'no-provider' } }
  | { type: 'TokenAssigned'; data: { serial: string; userId: string; by: AssignedBy } }
  /**
   * by 'self': the user removed it from their sign-in methods. It is then held for them: nobody else can
   * claim it until an admin releases it (TokenReleased); they may add it again with a second factor.
   * held: held although an admin took it (the tokens of a deleted user: the fob may still be out there).
   */
  | { type: 'TokenUnassigned'; data: { serial: string; userId: string; by: AssignedBy; held?: true } }
  /** An admin released a token its user removed: it is claimable from the inventory again. */
  | { type: 'TokenReleased'; data: { serial: string } }
  | { type: 'TokenRenamed'; data: { serial: string; name: string } }
  | { type: 'TokenActivated'; data: { serial: string; userId: string; step: number; drift: number } }
  | { type: 'TokenActivationFailed'; data: { serial: string; userId: string; reason: 'wrong-code' | 'replayed' } }
  | {
      type: 'OtpVerified'
      /** remote: the remote service's word for its answer (VIP ReasonCode, RADIUS packet type), never the code. */
      data: { serial: string; userId: string; step: number; drift: number; relyingApplication: string | null; level: string; remote?: string }
    }
  /**
   * failures: consecutive wrong codes after this one (a lock that ran out starts the count afresh).
   * unavailable: the remote service that checks the code gave no usable answer (not counted); remote: its
   * word for it (a ReasonCode, "timeout", "paused").
   */
  | { type: 'OtpRejected'; data: { serial: string; userId: string; reason: 'wrong' | 'replayed' | 'locked' | 'disabled' | 'not-allowed' | 'unavailable'; failures: number; remote?: string } }
  | { type: 'TokenLocked'; data: { serial: string; until: string; failures: number; lockCount: number } }
  | { type: 'TokenUnlocked'; data: { serial: string } }
  | { type: 'TokenDisabled'; data: { serial: string } }
  | { type: 'TokenEnabled'; data: { serial: string } }
  /** An admin resynchronised a drifted token with two consecutive codes: step is the later one's. */
  | { type: 'TokenResynced'; data: { serial: string; step: number; drift: number } }
  /** Permanent: lost, stolen or retired. Its seed is destroyed with it (TokenSecretDestroyed). */
  | { type: 'TokenRevoked'; data: { serial: string; reason: RevocationReason } }
  | { type: 'TokenSecretDestroyed'; data: { serial: string; seedFingerprint: string | null } }

export type RevocationReason = 'lost' | 'stolen' | 'retired' | 'compromised'
export const REVOCATION_REASONS: readonly RevocationReason[] = ['lost', 'stolen', 'retired', 'compromised']

export type TokenEventType = TokenEvent['type']

export const TOKEN_EVENT_TYPES: readonly TokenEventType[] = [
  'TokenImported', 'TokenAssigned', 'TokenUnassigned', 'TokenRenamed', 'TokenActivated', 'TokenActivationFailed',
  'OtpVerified', 'OtpRejected', 'TokenLocked', 'TokenUnlocked', 'TokenRevoked', 'TokenSecretDestroyed',
  'TokenDisabled', 'TokenEnabled', 'TokenResynced', 'TokenReleased',
  'TokenRegistered', 'ChallengeIssued', 'DeliveryAttempted', 'CodeDelivered', 'ChallengeUndelivered', 'SoftwareTokenCreated',
  'RemoteCredentialAssigned',
]

export function tokenStream(serial: string): string {
  return `token-${serial}`
}
