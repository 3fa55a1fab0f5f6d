import type { Role, UserEvent } from './events.js'

export interface UserState {
  userId: string
  exists: boolean
  upn: string
  displayName: string
  roles: Role[]
  groups: string[]
  createdAt: Date | null
  /** Ever had an active sign-in method: a new one then needs a second factor or an admin, never the password alone. */
  hadMethod: boolean
  /** Switched off by an admin: no sign-in until enabled. */
  disabled: boolean
  /** The serial of the method chosen as default; when it is no longer active, the newest active one is. */
  defaultMethod: string | null
  /** Consecutive wrong passwords, and when the last one was entered. */
  signInFailures: number
  lastSignInFailureAt: Date | null
  /** Deleted by an admin: no sign-in, no role, no group, for good. */
  deleted: boolean
  version: number
}

export function initialUserState(userId: string): UserState {
  return { userId, exists: false, upn: '', displayName: '', roles: [], groups: [], createdAt: null,
    hadMethod: false, disabled: false, defaultMethod: null, signInFailures: 0, lastSignInFailureAt: null, deleted: false, version: 0 }
}

export function evolveUser(state: UserState, event: UserEvent, at: Date): UserState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'UserRegistered':
      return { ...next, exists: true, upn: event.data.upn, displayName: event.data.displayName, createdAt: at }
    case 'UserSignedIn':
      // Any completed sign-in (a password, an upstream provider) ends a run of wrong passwords.
      return event.data.method === 'otp' ? next : { ...next, signInFailures: 0 }
    case 'UserSignInFailed':
      return { ...next, signInFailures: event.data.failures, lastSignInFailureAt: new Date(event.data.at) }
    case 'SignInMethodAdded':
      return { ...next, hadMethod: true }
    case 'UserDisabled':
      return { ...next, disabled: true }
    case 'UserEnabled':
      return { ...next, disabled: false }
    case 'UserRoleRevoked':
      return { ...next, roles: state.roles.filter((r) => r !== event.data.role) }
    case 'UserPasswordReset':
      return { ...next, signInFailures: 0, lastSignInFailureAt: null }
    case 'UserDeleted':
      return { ...next, deleted: true, disabled: true, roles: [], groups: [], defaultMethod: null }
    case 'DefaultMethodChosen':
      return { ...next, defaultMethod: event.data.serial }
    case 'SignInMethodRemoved':
    case 'UserContactChanged':
    case 'ActivationCodeRequested':
    case 'ActivationCodeIssued':
    case 'ActivationCodeRedeemed':
    case 'ActivationCodeExpired':
    case 'UserPasswordSet':
    case 'UserLinkedToUpstream':
    case 'TemporaryCodeIssued':
    case 'TemporaryCodeUsed':
      return next
    case 'UserRoleGranted':
      return state.roles.includes(event.data.role) ? next : { ...next, roles: [...state.roles, event.data.role].sort() }
    case 'UserAddedToGroup':
      return state.groups.includes(event.data.group) ? next : { ...next, groups: [...state.groups, event.data.group].sort() }
    case 'UserRemovedFromGroup':
      return { ...next, groups: state.groups.filter((g) => g !== event.data.group) }
    default: {
      const unknown: never = event
      throw new Error(`unknown user event ${(unknown as { type: string }).type}`)
    }
  }
}
