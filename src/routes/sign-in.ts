// The password step shared by /login and the OpenID interaction's sign-in, with the limits a NAT'd office
// and a targeted user both live with:
// - per account, growing delays after many wrong passwords (commands/users.ts BRUTE_FORCE), except in a
//   browser the user signed in from before: it carries a device cookie (OWASP's "device cookies"), so an
//   attacker elsewhere cannot keep the user out; a device cookie stops counting after DEVICE_FAILURES;
// - per address, wrong passwords are counted, not requests: ADDRESS_FAILURES in a window, then a wait;
// - an unknown name is delayed like a known one, so the delay does not tell which accounts exist.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BRUTE_FORCE, recordSignIn, signInWithPassword } from '../commands/users.js'
import { methodChangesSinceLastSignIn, type UsersTable } from '../read-models/users.js'
import { startSession } from './guards.js'

export const ADDRESS_FAILURES = { max: 100, windowMs: 15 * 60_000 }
export const DEVICE_FAILURES = { max: 10, windowMs: 15 * 60_000 }
export const DEVICE_COOKIE = 'tessera_device'
const DEVICE_DAYS = 180

export type SignInResult = { user: UsersTable } | { status: 401 | 429; message: string }

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

/**
 * Checks a password under the limits above and, when it is right, starts the gateway session and records
 * the sign-in. Returns the user, or the status and message to show.
 */
export async function passwordSignIn(
  app: FastifyInstance, request: FastifyRequest, reply: FastifyReply,
  input: { upn: string; password: string; relyingApplication?: string | null; interactionUid?: string },
): Promise<SignInResult> {
  const address = `pwd-ip:${request.ip}`
  const fromAddress = await app.failures.get(address)
  if (fromAddress.count >= ADDRESS_FAILURES.max) {
    return { status: 429, message: `Too many wrong passwords from your network. Wait ${minutes(fromAddress.resetInMs)} minutes and try again.` }
  }
  const upn = input.upn.trim().toLowerCase()
  const device = readDevice(app, request)
  const deviceTrusted = device ? (await app.failures.get(`pwd-device:${device.id}`)).count < DEVICE_FAILURES.max : false
  const unknownName = `pwd-name:${upn}`
  const meta = (userId: string | null) => app.eventMetadata(request, userId ? { type: 'user', id: userId } : { type: 'system', id: 'sign-in' }, input.relyingApplication ?? null)
  const outcome = await signInWithPassword(app.commands, {
    upn, password: input.password, trustedDevice: (userId) => deviceTrusted && device!.userId === userId,
  }, meta(null))
  const delayed = { status: 429 as const, message: 'Too many wrong passwords for this account. Wait a minute and try again, or sign in from a browser you used before.' }
  if (outcome.outcome === 'wait') return delayed
  if (outcome.outcome === 'wrong') {
    await app.failures.add(address, ADDRESS_FAILURES.windowMs)
    if (device) await app.failures.add(`pwd-device:${device.id}`, DEVICE_FAILURES.windowMs)
    if (!outcome.userId) {
      // The same delay for a name nobody has, so that the delay does not reveal which names exist.
      const unknown = await app.failures.add(unknownName, BRUTE_FORCE.failureResetSeconds * 1000)
      if (unknown.count > BRUTE_FORCE.failureFactor) return delayed
    }
    return { status: 401, message: WRONG_PASSWORD }
  }
  const { user } = outcome
  await startSession(request, app.db, user, app.commands.now().getTime(), input.interactionUid)
  await noteChangesSinceLastSignIn(app, request, user.id)
  await recordSignIn(app.commands, user.id, 'pwd', meta(user.id))
  if (!device || device.userId !== user.id) rememberDevice(app, reply, user.id)
  return { user }
}

const when = (d: Date) => d.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })

/**
 * Keeps in the session, to be said once on Security info, the methods added to or removed from the
 * account since the user last signed in: call it after startSession, before the sign-in is recorded.
 */
export async function noteChangesSinceLastSignIn(app: FastifyInstance, request: FastifyRequest, userId: string): Promise<void> {
  const changes = await methodChangesSinceLastSignIn(app.db, userId)
  if (changes.length === 0) return
  request.session.set('notices', changes.map((c) => {
    const what = c.type === 'SignInMethodAdded' ? 'added to' : 'removed from'
    const who = c.by === 'admin' ? ' by an administrator' : ''
    const where = c.sourceIp ? ` from address ${c.sourceIp}` : ''
    return `A sign-in method (serial ${c.serial}) was ${what} your account${who} on ${when(c.at)} UTC${where}.`
  }))
}
