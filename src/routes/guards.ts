// Who may see a page: signed in (password), and for adding a method, recently verified with a code.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { findUser, type UsersTable } from '../read-models/users.js'
import type { Role } from '../domain/user/events.js'
import { errorPage } from './render.js'
import { activeTokensOfUser } from '../read-models/tokens.js'
import type { Executor } from '../read-models/database.js'
import { effectivePolicy } from '../read-models/policies.js'
import { startGatewaySession } from '../read-models/sessions.js'
import { SESSION_HOURS } from '../../plugins/session.js'

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

/** What a user must do before changing their sign-in methods (add, rename, delete, default). */
export type MethodChangeAccess =
  /** Go ahead: a code from an existing method (or a temporary code) within VERIFIED_FOR_MS, or a first method. */
  | 'allowed'
  /** Enter a code from one of their active methods first. */
  | 'code'
  /**
   * The account has no active method but had one, or its policy does not let a password alone add the
   * first: only a temporary code from an admin, or a token an admin assigned to the user, will do.
   */
  | 'admin'

/**
 * May this user change their sign-in methods now?
 * - A user with an active method needs a code from one within the last VERIFIED_FOR_MS (a stolen password
 *   alone adds, renames and deletes nothing).
 * - A user without one who never had one may add the first after the password, unless their policy says
 *   otherwise or they hold a role (an admin's or auditor's first token would open the staff pages on a
 *   password and a fob from the inventory); one who had one (all removed or lost) needs an admin: a
 *   temporary code, or an assigned token.
 */
export async function methodChangeAccess(db: Executor, request: FastifyRequest, userId: string, now: number): Promise<MethodChangeAccess> {
  const verifiedAt = request.session.get('verifiedAt') ?? 0
  if (now - verifiedAt <= VERIFIED_FOR_MS) return 'allowed'
  const [active, user, policy] = await Promise.all([activeTokensOfUser(db, userId), findUser(db, userId), effectivePolicy(db, userId)])
  if (active.length > 0) return 'code'
  if (user && !user.had_method && user.roles.length === 0 && policy.settings.firstMethodWithPassword) return 'allowed'
  return 'admin'
}

/**
 * preHandler for the steps that add a method: 'code' goes to the verify page and back; 'admin' may still
 * activate a token an admin assigned to them (the serial step checks), so it passes with that mark.
 */
export function requireVerified(db: Executor, now: () => number = Date.now) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const user = signedIn(request)
    if (!user) return requireUser(request, reply)
    const access = await methodChangeAccess(db, request, user.id, now())
    request.methodChangeAccess = access
    if (access === 'code') return reply.redirect('/security-info/verify', 303)
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by requireVerified for the add steps. */
    methodChangeAccess?: MethodChangeAccess
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
 * session id (no fixation) recorded server-side with its absolute lifetime, and, inside an OpenID
 * interaction, the mark that this interaction's forced sign-in (prompt=login, max_age) has happened.
 */
export async function startSession(
  request: FastifyRequest, db: Executor, user: Pick<UsersTable, 'id' | 'upn' | 'display_name'>, at: number, interactionUid?: string,
  passwordAt: Date | null = null,
): Promise<void> {
  const sid = await startGatewaySession(db, user.id, new Date(at), SESSION_HOURS * 3600 * 1000, passwordAt)
  request.session.regenerate()
  request.session.set('sid', sid)
  request.session.set('userId', user.id)
  request.session.set('upn', user.upn)
  request.session.set('displayName', user.display_name)
  request.session.set('authenticatedAt', at)
  if (interactionUid) request.session.set('interactionPassword', interactionUid)
}

/**
 * A method was just added with its first code: that code is a verification too, and in the middle of an
 * OpenID sign-in it is the proof of possession the sign-in asked for (routes/interaction).
 */
export function methodAdded(request: FastifyRequest, serial: string, now: number): void {
  request.session.set('verifiedAt', now)
  const returnTo = request.session.get('returnTo')
  if (returnTo?.startsWith('/interaction/')) request.session.set('possession', { uid: returnTo.slice('/interaction/'.length), serial, at: now })
}

/** Where a method's "added" page's Done leads: back to the OpenID sign-in that sent the user here, or Security info. */
export function afterMethodAdded(request: FastifyRequest): string {
  const returnTo = request.session.get('returnTo')
  if (!returnTo?.startsWith('/interaction/')) return '/security-info'
  request.session.set('returnTo', undefined)
  return returnTo
}
