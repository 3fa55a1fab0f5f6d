import type { Role, UserEvent } from './events.js'

export interface UserState {
  userId: string
  exists: boolean
  upn: string
  displayName: string
  roles: Role[]
  groups: string[]
  createdAt: Date | null
  version: number
}

export function initialUserState(userId: string): UserState {
  return { userId, exists: false, upn: '', displayName: '', roles: [], groups: [], createdAt: null, version: 0 }
}

export function evolveUser(state: UserState, event: UserEvent, at: Date): UserState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'UserRegistered':
      return { ...next, exists: true, upn: event.data.upn, displayName: event.data.displayName, createdAt: at }
    case 'UserPasswordSet':
    case 'UserSignedIn':
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
