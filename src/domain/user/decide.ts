// User commands -> events.
import type { UserEvent } from './events.js'
import type { UserState } from './state.js'

export class UserError extends Error {
  override name = 'UserError'
  statusCode = 422
}

export class UserAlreadyExists extends UserError {
  override name = 'UserAlreadyExists'
  override statusCode = 409
  constructor(readonly upn: string) {
    super(`a user ${upn} already exists`)
  }
}

export class InvalidUser extends UserError {
  override name = 'InvalidUser'
}

const UPN = /^[^\s@]{1,64}@[^\s@]{1,255}$/

export function normalizeUpn(upn: string): string | null {
  const value = upn.trim().toLowerCase()
  return UPN.test(value) ? value : null
}

/** A group name: 1 to 64 letters, digits, '.', '_' or '-', stored in lower case; else InvalidUser. */
export function parseGroup(group: string): string {
  const value = group.trim().toLowerCase()
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(value)) throw new InvalidUser("a group name is 1 to 64 letters, digits, '.', '_' or '-'")
  return value
}

export type UserCommand =
  | { type: 'RegisterUser'; data: { userId: string; upn: string; displayName: string } }
  /** Groups gather users for security policies. Joining a group twice, or leaving one not joined, changes nothing. */
  | { type: 'JoinGroup' | 'LeaveGroup'; data: { group: string } }

export function decideUser(state: UserState, command: UserCommand): UserEvent[] {
  switch (command.type) {
    case 'RegisterUser': {
      // - A user principal name looks like an e-mail address; it is stored in lower case.
      // - A display name is 1 to 100 printable characters.
      const upn = normalizeUpn(command.data.upn)
      if (!upn) throw new InvalidUser(`"${command.data.upn}" is not a user principal name like alice@example.com`)
      const displayName = command.data.displayName.trim()
      if (displayName.length < 1 || displayName.length > 100 || /[\p{Cc}]/u.test(displayName)) {
        throw new InvalidUser('the display name must be 1 to 100 printable characters')
      }
      if (state.exists) throw new UserAlreadyExists(upn)
      return [
        { type: 'UserRegistered', data: { userId: command.data.userId, upn, displayName } },
        { type: 'UserPasswordSet', data: { userId: command.data.userId } },
      ]
    }
    case 'JoinGroup':
    case 'LeaveGroup': {
      const group = parseGroup(command.data.group)
      const join = command.type === 'JoinGroup'
      if (state.groups.includes(group) === join) return []
      return [join ? { type: 'UserAddedToGroup', data: { userId: state.userId, group } } : { type: 'UserRemovedFromGroup', data: { userId: state.userId, group } }]
    }
    default: {
      const unknown: never = command
      throw new Error(`unknown user command ${(unknown as { type: string }).type}`)
    }
  }
}
