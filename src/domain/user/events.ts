// What happens to a user account. Stream: user-<id>. No password or hash appears here.

export type UserEvent =
  | { type: 'UserRegistered'; data: { userId: string; upn: string; displayName: string } }
  | { type: 'UserPasswordSet'; data: { userId: string } }

export function userStream(userId: string): string {
  return `user-${userId}`
}
