// The password step shared by /login and the OpenID interaction's sign-in, with the limits a NAT'd office
// and a targeted user both live with:
// - per account, growing delays after many wrong passwords (commands/users.ts BRUTE_FORCE), except in a
//   browser the user signed in from before: it carries a device cookie (OWASP's "device cookies"), so an
//   attacker elsewhere cannot keep the user out; a device cookie stops counting after DEVICE_FAILURES;
// - per address, wrong passwords are counted, not requests: ADDRESS_FAILURES in a window, then a wait;
// - an unknown name is delayed like a known one, so the delay does not tell which accounts exist.
import { signIns } from '../metrics.js'
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { accountWaitMs, BRUTE_FORCE, checkPassword, recordSignIn, recordSignInFailure, waitSecondsAfter } from '../commands/users.js'
import { findUserByUpn, methodChangesSinceLastSignIn, type MethodChange, type UsersTable } from '../read-models/users.js'
import { startSession } from './guards.js'

export const ADDRESS_FAILURES = { max: 100, windowMs: 15 * 60_000 }
export const DEVICE_FAILURES = { max: 10, windowMs: 15 * 60_000 }
export const DEVICE_COOKIE = 'tessera_device'
const DEVICE_DAYS = 180

/** Signed in; or the password was a temporary one, to be changed first (routes/password.ts); or refused. */
export type SignInResult = { user: UsersTable } | { changePassword: true } | { status: 401 | 403 | 429; message: string }

/** What the session keeps between a right temporary password and the new one (10 minutes to choose it). */
export interface PendingPasswordChange {
  userId: string
  /** When the temporary password was set: a newer one makes this one void. */
  since: number
  at: number
  interactionUid?: string
  relyingApplication?: string | null
  returnTo?: string
}
export const PASSWORD_CHANGE_MS = 10 * 60_000

export const WRONG_PASSWORD = 'Your account or password is incorrect.'

function deviceMac(app: FastifyInstance, deviceId: string, userId: string): Buffer {
  return createHmac('sha256', app.deriveKey('device cookies')).update(`${deviceId}.${userId}`).digest()
}

/** The device cookie's id and the user it vouches for, when its MAC is right. */
function readDevice(app: FastifyInstance, request: FastifyRequest): { id: string; userId: string } | null {
  const raw = request.cookies?.[DEVICE_COOKIE]
  const parts = typeof raw === 'string' ? raw.split('.') : []
  if (parts.length !== 3) return null
  const [id, encodedUser, mac] = parts as [string, string, string]
  const userId = Buffer.from(encodedUser, 'base64url').toString('utf8')
  const expected = deviceMac(app, id, userId)
  const given = Buffer.from(mac, 'base64url')
  return given.length === expected.length && timingSafeEqual(given, expected) ? { id, userId } : null
}

function rememberDevice(app: FastifyInstance, reply: FastifyReply, userId: string): void {
  const id = randomBytes(12).toString('base64url')
  const value = `${id}.${Buffer.from(userId).toString('base64url')}.${deviceMac(app, id, userId).toString('base64url')}`
  reply.setCookie(DEVICE_COOKIE, value, {
    path: '/', httpOnly: true, sameSite: 'lax', secure: app.config.publicUrl.startsWith('https://'), maxAge: DEVICE_DAYS * 86_400,
  })
}

const minutes = (ms: number) => Math.max(1, Math.ceil(ms / 60_000))

/** At most this many attempts per account in a minute reach the password check from unknown browsers. */
const ATTEMPTS_PER_MINUTE = BRUTE_FORCE.failureFactor

/**
 * Checks a password under the limits above and, when it is right, starts the gateway session and records
 * the sign-in. Returns the user, or the status and message to show.
 * Every attempt is counted (per address, per account name) before its password is checked, and the counts
 * are taken back when it is right: a burst of guesses sent at once cannot all pass between a check and
 * its count.
 */
export async function passwordSignIn(
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply,
  input: { upn: string; password: string; relyingApplication?: string | null; interactionUid?: string; returnTo?: string },
): Promise<SignInResult> {
  const checked = await passwordCheck(app, request, input)
  if (!('user' in checked)) return checked
  const user = checked.user
  const now = app.commands.now()
  if (user.must_change) {
    if (!user.password_expires_at || user.password_expires_at <= now) {
      return { status: 403, message: 'Your temporary password has expired. Ask your administrator for a new one.' }
    }
    // No session yet: the temporary password opens only the page that replaces it.
    request.session.regenerate()
    const pending: PendingPasswordChange = { userId: user.id, since: user.password_updated_at!.getTime(), at: now.getTime(),
      interactionUid: input.interactionUid, relyingApplication: input.relyingApplication ?? null, returnTo: input.returnTo }
    request.session.set('passwordChange', pending)
    return { changePassword: true }
  }
  const { password_hash: _, must_change: _m, password_expires_at: _e, password_updated_at: passwordAt, ...signedIn } = user
  return { user: await completeSignIn(app, request, reply, signedIn,
    { interactionUid: input.interactionUid, relyingApplication: input.relyingApplication ?? null, passwordAt }) }
}

type CheckedUser = NonNullable<Awaited<ReturnType<typeof findUserByUpn>>>

/**
 * The password step's check alone, under the limits above, starting no session: the account whose
 * password it is (enabled; perhaps a temporary password, must_change), or the refusal to show. Also what
 * redeeming an activation code asks for (/activate).
 */
export async function passwordCheck(
  app: FastifyInstance, request: FastifyRequest, input: { upn: string; password: string; relyingApplication?: string | null },
): Promise<{ user: CheckedUser } | { status: 401 | 403 | 429; message: string }> {
  const upn = input.upn.trim().toLowerCase()
  const now = app.commands.now()
  const address = `pwd-ip:${request.ip}`
  const attemptsKey = `pwd-attempts:${upn}`
  const unknownKey = `pwd-unknown:${upn}`
  const unknownWaitKey = `pwd-unknown-wait:${upn}`
  const user = await findUserByUpn(app.db, upn)
  const device = readDevice(app, request)
  const trusted = !!user && device?.userId === user.id && (await app.failures.get(`pwd-device:${device.id}`)).count < DEVICE_FAILURES.max

  const fromAddress = await app.failures.add(address, ADDRESS_FAILURES.windowMs)
  if (fromAddress.count > ADDRESS_FAILURES.max) {
    signIns.inc({ result: 'throttled' })
    return { status: 429, message: `Too many wrong passwords from your network. Wait ${minutes(fromAddress.resetInMs)} minutes and try again.` }
  }
  const delayed = { status: 429 as const, message: 'Too many wrong passwords for this account. Wait a minute and try again, or sign in from a browser you used before.' }
  if (!trusted) {
    // A known account's delay comes from its events; a name nobody has gets the same one from counters,
    // and neither checks a password while it waits: the answer and its time tell nothing.
    const waiting = user ? accountWaitMs(user, now) > 0 : (await app.failures.get(unknownWaitKey)).count > 0
    const attempts = await app.failures.add(attemptsKey, 60_000)
    if (waiting || attempts.count > ATTEMPTS_PER_MINUTE) {
      await app.failures.forgive(address)
      await app.failures.forgive(attemptsKey)
      signIns.inc({ result: 'throttled' })
      return delayed
    }
  }

  const meta = (userId: string | null) => app.eventMetadata(request, userId ? { type: 'user', id: userId } : { type: 'system', id: 'sign-in' }, input.relyingApplication ?? null)
  if (!(await checkPassword(user, input.password))) {
    if (device) await app.failures.add(`pwd-device:${device.id}`, DEVICE_FAILURES.windowMs)
    if (user) {
      await recordSignInFailure(app.commands, user.upn, meta(null))
    } else {
      const run = await app.failures.add(unknownKey, BRUTE_FORCE.failureResetSeconds * 1000)
      const wait = waitSecondsAfter(run.count)
      if (wait > 0) await app.failures.add(unknownWaitKey, wait * 1000)
    }
    signIns.inc({ result: 'wrong' })
    return { status: 401, message: WRONG_PASSWORD }
  }
  // A right password ends the account's run, as its events do (UserSignedIn resets the count).
  await app.failures.forgive(address)
  await app.failures.clear(attemptsKey)
  // Said only to whoever knows the password: it tells nobody else the account exists.
  signIns.inc({ result: user!.disabled ? 'disabled' : 'ok' })
  if (user!.disabled) return { status: 403, message: 'Your account is disabled. Contact your administrator.' }
  return { user: user! }
}

/** A right password (or a temporary one just replaced): the session starts and the sign-in is recorded. */
export async function completeSignIn(
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, user: UsersTable,
  input: { interactionUid?: string; relyingApplication: string | null; passwordAt: Date | null },
): Promise<UsersTable> {
  // The password it was checked against: if it changes before or after this (a reset), the session is dead.
  await startSession(request, app.db, user, app.commands.now().getTime(), input.interactionUid, input.passwordAt)
  await noteChangesSinceLastSignIn(app, request, user.id)
  await recordSignIn(app.commands, user.id, 'pwd', app.eventMetadata(request, { type: 'user', id: user.id }, input.relyingApplication))
  const device = readDevice(app, request)
  if (!device || device.userId !== user.id) rememberDevice(app, reply, user.id)
  return user
}

/** One change in a sentence a person reads. */
export function describeChange(c: MethodChange): string {
  const what = c.type === 'SignInMethodAdded' ? 'added to' : 'removed from'
  const who = c.by === 'admin' ? ' by an administrator' : ''
  const where = c.sourceIp ? ` from address ${c.sourceIp}` : ''
  return `A sign-in method (serial ${c.serial}) was ${what} your account${who} on ${when(c.at)} UTC${where}.`
}

const when = (d: Date) => d.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })

/**
 * Keeps in the session, to be said once on Security info, the methods added to or removed from the
 * account since the user last signed in: call it after startSession, before the sign-in is recorded.
 */
export async function noteChangesSinceLastSignIn(app: FastifyInstance, request: FastifyRequest, userId: string): Promise<void> {
  const changes = await methodChangesSinceLastSignIn(app.db, userId)
  if (changes.length === 0) return
  request.session.set('notices', changes.map(describeChange))
}
