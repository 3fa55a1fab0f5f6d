// Inline read model `users`: who can sign in, by user principal name (unique, case-insensitive).
import { USER_EVENT_TYPES, type Role, type UserEvent } from '../domain/user/events.js'
import { evolveUser, initialUserState, type UserState } from '../domain/user/state.js'
import type { UsersTable } from '../read-models/users.js'
import { stateProjection } from './fold.js'

export const usersProjection = stateProjection<UserState, UserEvent, UsersTable & Record<string, unknown>>({
  name: 'users',
  table: 'users',
  key: 'id',
  prefix: 'user-',
  handles: USER_EVENT_TYPES,
  initial: initialUserState,
  evolve: evolveUser,
  fromRow: (r) => ({ userId: r.id, exists: true, upn: r.upn, displayName: r.display_name, roles: r.roles as Role[], groups: r.groups, createdAt: r.created_at,
    hadMethod: r.had_method, defaultMethod: r.default_method, disabled: r.disabled, signInFailures: r.sign_in_failures, lastSignInFailureAt: r.last_sign_in_failure_at, deleted: r.deleted, version: r.version }),
  toRow: (s) => ({ id: s.userId, upn: s.upn, display_name: s.displayName, roles: JSON.stringify(s.roles) as unknown as string[], groups: JSON.stringify(s.groups) as unknown as string[], created_at: s.createdAt!,
    had_method: s.hadMethod, default_method: s.defaultMethod, disabled: s.disabled, sign_in_failures: s.signInFailures, last_sign_in_failure_at: s.lastSignInFailureAt, deleted: s.deleted, version: s.version }),
})
