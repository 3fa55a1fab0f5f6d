// Who may see a page: signed in (password), and for adding a method, recently verified with a code.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { findUser, type UsersTable } from '../read-models/users.js'
import type { Role } from '../domain/user/events.js'
import { errorPage } from './render.js'
import { activeTokensOfUser } from '../read-models/tokens.js'
import type { Executor } from '../read-models/database.js'

export interface SignedInUser {
  id: string
  upn: string
  displayName: string
}

/** How long a verified code lets the user add methods without another code. */
export const VERIFIED_FOR_MS = 10 * 60 * 1000

export function signedIn(request: FastifyRequest): SignedInUser | null {
  const s = request.session
  const id = s.get('userId')
  if (!id) return null
  return { id, upn: s.get('upn') ?? '', displayName: s.get('displayName') ?? '' }
}

/** preHandler: a page for signed-in users; others go to the sign-in page and come back. */
export async function requireUser(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (signedIn(request)) return
  if (request.method === 'GET') request.session.set('returnTo', request.url)
  return reply.redirect('/login', 303)
}

/**
 * preHandler for adding a method:
 * - a user with no active method may add the first one after the password alone;
 * - a user who has one must first enter a code from it (a stolen password alone adds nothing).
 */
export function requireVerified(db: Executor, now: () => number = Date.now) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const user = signedIn(request)
    if (!user) return requireUser(request, reply)
    const active = await activeTokensOfUser(db, user.id)
    if (active.length === 0) return
    const verifiedAt = request.session.get('verifiedAt') ?? 0
    if (now() - verifiedAt <= VERIFIED_FOR_MS) return
    return reply.redirect('/security-info/verify', 303)
  }
}

/** How long a code entered by an admin or auditor keeps their pages open. */
export const STAFF_VERIFIED_FOR_MS = 60 * 60 * 1000

/**
 * preHandler for admin and auditor pages:
 * - signed in through the gateway's own login, else to the sign-in page and back;
 * - holding the role, else 403;
 * - a code from one of their active tokens entered within the hour (mfa), else the Enter code step and back;
 *   activating a first token or a temporary code does not count (plugins/session.ts tokenVerifiedAt).
 */
export function requireStaff(db: Executor, role: Role, now: () => number = Date.now) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const session = signedIn(request)
    if (!session) {
      if (request.method === 'GET') request.session.set('returnTo', request.url)
      return reply.redirect('/login', 303)
    }
    const user = await findUser(db, session.id)
    if (!user?.roles.includes(role)) {
      return errorPage(reply, 403, role === 'admin' ? 'Admins only' : 'Auditors only', `Your account does not have the ${role} role.`)
    }
    const verifiedAt = request.session.get('tokenVerifiedAt') ?? 0
    if (now() - verifiedAt > STAFF_VERIFIED_FOR_MS) {
      if (request.method === 'GET') request.session.set('returnTo', request.url)
      return reply.redirect('/security-info/verify', 303)
    }
  }
}

/**
 * Starts a new session for a user who has just authenticated (password or upstream provider): a fresh
 * session id (no fixation), and, inside an OpenID interaction, the mark that this interaction's
 * forced sign-in (prompt=login, max_age) has happened.
 */
export function startSession(request: FastifyRequest, user: Pick<UsersTable, 'id' | 'upn' | 'display_name'>, at: number, interactionUid?: string): void {
  request.session.regenerate()
  request.session.set('userId', user.id)
  request.session.set('upn', user.upn)
  request.session.set('displayName', user.display_name)
  request.session.set('authenticatedAt', at)
  if (interactionUid) request.session.set('interactionPassword', interactionUid)
}
