// What happens to a user account. Stream: user-<id>. No password or hash appears here.

export type UserEvent =
  | { type: 'UserRegistered'; data: { userId: string; upn: string; displayName: string } }
  | { type: 'UserPasswordSet'; data: { userId: string } }
  /** method: RFC 8176 authentication method reference (pwd, otp, hwk, ...). */
  | { type: 'UserSignedIn'; data: { userId: string; method: string } }
  /** The user's identity at an upstream provider (issuer, subject) now signs them in here. */
  | { type: 'UserLinkedToUpstream'; data: { userId: string; issuer: string; subject: string } }
  | { type: 'UserRoleGranted'; data: { userId: string; role: Role } }
  /** An admin gave a user who lost their token a code to sign in with; the code itself is never recorded. */
  | { type: 'TemporaryCodeIssued'; data: { userId: string; expiresAt: string; oneTime: boolean } }
  | { type: 'TemporaryCodeUsed'; data: { userId: string; relyingApplication: string | null } }
  /** Groups gather users for security policies. */
  | { type: 'UserAddedToGroup'; data: { userId: string; group: string } }
  | { type: 'UserRemovedFromGroup'; data: { userId: string; group: string } }
  /**
   * A sign-in method became usable (activated) or stopped being usable (removed, unassigned, revoked).
   * Written with the method's own event, in the same transaction; the user is told at their next sign-in.
   */
  | { type: 'SignInMethodAdded'; data: { userId: string; serial: string; by: MethodChangedBy } }
  | { type: 'SignInMethodRemoved'; data: { userId: string; serial: string; by: MethodChangedBy } }
  /** An admin switched the account off: no sign-in of any kind until it is enabled again; its sessions end. */
  | { type: 'UserDisabled'; data: { userId: string } }
  | { type: 'UserEnabled'; data: { userId: string } }
  | { type: 'UserRoleRevoked'; data: { userId: string; role: Role } }
  /** The method the user signs in with by default (Entra's "Default sign-in method"): a token's serial. */
  | { type: 'DefaultMethodChosen'; data: { userId: string; serial: string } }
  /**
   * A wrong password for this account; failures: consecutive ones after this (a sign-in resets them);
   * at: the decision's clock, which the delay after it counts from.
   */
  | { type: 'UserSignInFailed'; data: { userId: string; failures: number; at: string } }
  /**
   * An admin set a temporary password (never recorded): it works until expiresAt, only to choose a new one
   * (UserPasswordSet). The account's sessions end and its run of wrong passwords is over.
   */
  | { type: 'UserPasswordReset'; data: { userId: string; expiresAt: string } }
  /**
   * An admin deleted the account: nothing signs in as it again, its name is free, its tokens are held (an
   * admin releases each one), its history stays. Written with the tokens' and its methods' events.
   */
  | { type: 'UserDeleted'; data: { userId: string; upn: string } }
  /** Where the user can be reached changed (user_contacts): masked here, or null when removed. */
  | { type: 'UserContactChanged'; data: { userId: string; email: string | null; mobile: string | null } }
  /**
   * A software token was asked for (Defender's "Request a software token"): by an admin for the user, or by
   * the user. code: the activation code's id (ACT-...), never the code.
   */
  | { type: 'ActivationCodeRequested'; data: { userId: string; code: string; by: 'admin' | 'self' } }
  /** The activation code exists until expiresAt: shown once to whoever asked, or e-mailed to the user (masked address). */
  | { type: 'ActivationCodeIssued'; data: { userId: string; code: string; expiresAt: string; delivery: 'shown' | 'email'; to: string | null } }
  /** The user entered the code with their password: a key was made (serial) and shown, waiting for the app's first code. */
  | { type: 'ActivationCodeRedeemed'; data: { userId: string; code: string; serial: string } }
  /**
   * The code can no longer be redeemed: its time ran out, a newer one replaced it, the account was deleted or
   * disabled, its password reset, or (a code the user asked for) one of their methods removed.
   */
  | { type: 'ActivationCodeExpired'; data: { userId: string; code: string; reason: 'expired' | 'replaced' | 'account-deleted' | 'account-disabled' | 'password-reset' | 'method-removed' | 'revoked' } }

export function userStream(userId: string): string {
  return `user-${userId}`
}

/** Who changed a user's methods: the user, an admin, or the migration that recorded earlier ones. */
export type MethodChangedBy = 'self' | 'admin' | 'import' | 'backfill'

export type Role = 'admin' | 'auditor'
export const ROLES: readonly Role[] = ['admin', 'auditor']

export const USER_EVENT_TYPES = ['UserRegistered', 'UserPasswordSet', 'UserSignedIn', 'UserLinkedToUpstream', 'UserRoleGranted',
  'TemporaryCodeIssued', 'TemporaryCodeUsed', 'UserAddedToGroup', 'UserRemovedFromGroup', 'SignInMethodAdded', 'SignInMethodRemoved',
  'UserSignInFailed', 'DefaultMethodChosen', 'UserDisabled', 'UserEnabled', 'UserRoleRevoked', 'UserPasswordReset', 'UserDeleted', 'UserContactChanged',
  'ActivationCodeRequested', 'ActivationCodeIssued', 'ActivationCodeRedeemed', 'ActivationCodeExpired'] as const
