// Add sign-in method > Hardware token, in Entra's three steps: serial number, name, first code.
// - Serial: an unknown serial and one that belongs to someone else get one message.
// - Name: 1 to 64 characters, kept if the user goes back.
// - Code: within the activation window, accepted once; wrong codes are counted per token and limited
//   per user and per address. The token is claimed, named and activated in one append.
// The steps live in the session; Cancel forgets them and changes nothing.
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { activateToken, checkSerial } from '../../commands/tokens.js'
import { normalizeName } from '../../domain/token/decide.js'
import { TokenError } from '../../domain/token/errors.js'
import { loadToken } from '../../read-models/tokens.js'
import { afterMethodAdded, methodAdded, requireVerified, signedIn, type SignedInUser } from '../guards.js'
import { page } from '../render.js'
import { methodName } from '../../methods/index.js'

const BASE = '/security-info/hardware-token'
/** The steps must be finished within this time, or begun again. */
const ENROLL_FOR_MS = 15 * 60 * 1000

export default async function hardwareTokenRoutes(
  app: FastifyInstance,
  options: { attemptLimits: preHandlerAsyncHookHandler[] },
): Promise<void> {
  const user = (request: FastifyRequest) => signedIn(request) as SignedInUser
  const now = () => app.commands.now().getTime()
  const enrollment = (request: FastifyRequest) => {
    const e = request.session.get('enroll')
    return e && now() - e.claimedAt < ENROLL_FOR_MS ? e : null
  }

  // Cancel forgets the steps and changes nothing: it needs no fresh verification.
  app.post(`${BASE}/cancel`, async (request, reply) => {
    request.session.set('enroll', undefined)
    return reply.redirect('/security-info', 303)
  })

  // The steps: only for a user who may add a method now (requireVerified).
  await app.register(async (steps) => {
    steps.addHook('preHandler', requireVerified(app.db, now))

    // ?serial= comes from Security info's Activate link for a token an admin assigned.
    steps.get<{ Querystring: { serial?: unknown } }>(`${BASE}/serial`, async (request, reply) => {
      const given = typeof request.query.serial === 'string' ? request.query.serial.slice(0, 64) : ''
      return page(request, reply, 'security-info/hardware-token/serial', { title: 'Hardware token', values: { serial: given || enrollment(request)?.serial || '' } })
    })

    steps.post<{ Body: { serial?: string } }>(`${BASE}/serial`, { preHandler: options.attemptLimits }, async (request, reply) => {
      const serial = (request.body?.serial ?? '').replace(/\s/g, '')
      const again = (message: string) => page(request, reply, 'security-info/hardware-token/serial',
        { title: 'Hardware token', values: { serial }, errors: { serial: message } }, 422)
      if (!serial) return again('Enter the serial number on the back of your token.')
      try {
        await checkSerial(app.commands, serial, user(request).id, { assignedOnly: request.methodChangeAccess === 'admin' })
      } catch (error) {
        if (error instanceof TokenError) return again(error.message)
        throw error
      }
      const previous = enrollment(request)
      request.session.set('enroll', { serial, name: previous?.serial === serial ? previous.name : undefined, claimedAt: now() })
      return reply.redirect(`${BASE}/name`, 303)
    })

    steps.get(`${BASE}/name`, async (request, reply) => {
      const e = enrollment(request)
      if (!e) return reply.redirect(`${BASE}/serial`, 303)
      const { state } = await loadToken(app.db, e.serial)
      return page(request, reply, 'security-info/hardware-token/name', { title: 'Hardware token', serial: e.serial,
        values: { name: e.name ?? methodName(state) } })
    })

    steps.post<{ Body: { name?: string } }>(`${BASE}/name`, async (request, reply) => {
      const e = enrollment(request)
      if (!e) return reply.redirect(`${BASE}/serial`, 303)
      const name = request.body?.name ?? ''
      const normalized = normalizeName(name)
      if (!normalized) {
        return page(request, reply, 'security-info/hardware-token/name', { title: 'Hardware token', serial: e.serial, values: { name },
          errors: { name: 'Give your token a name of 1 to 64 characters.' } }, 422)
      }
      request.session.set('enroll', { ...e, name: normalized })
      return reply.redirect(`${BASE}/code`, 303)
    })

    steps.get(`${BASE}/code`, async (request, reply) => {
      const e = enrollment(request)
      if (!e?.name) return reply.redirect(e ? `${BASE}/name` : `${BASE}/serial`, 303)
      const { state } = await loadToken(app.db, e.serial)
      return page(request, reply, 'security-info/hardware-token/code', { title: 'Hardware token', serial: e.serial, name: e.name, digits: state.digits })
    })

    steps.post<{ Body: { code?: string } }>(`${BASE}/code`, { preHandler: options.attemptLimits }, async (request, reply) => {
      const e = enrollment(request)
      if (!e?.name) return reply.redirect(e ? `${BASE}/name` : `${BASE}/serial`, 303)
      const u = user(request)
      const { state } = await loadToken(app.db, e.serial)
      const code = (request.body?.code ?? '').replace(/\s/g, '')
      const again = (message: string) => page(request, reply, 'security-info/hardware-token/code',
        { title: 'Hardware token', serial: e.serial, name: e.name, digits: state.digits, errors: { code: message } }, 422)
      if (!new RegExp(`^\\d{${state.digits}}$`).test(code)) return again(`Enter the ${state.digits}-digit code displayed on your token.`)
      try {
        await activateToken(app.commands, { serial: e.serial, userId: u.id, name: e.name, code, assignedOnly: request.methodChangeAccess === 'admin' },
          app.eventMetadata(request, { type: 'user', id: u.id }))
      } catch (error) {
        if (error instanceof TokenError) return again(error.message)
        throw error
      }
      request.session.set('enroll', undefined)
      methodAdded(request, e.serial, now())
      return reply.redirect(`${BASE}/done?serial=${encodeURIComponent(e.serial)}`, 303)
    })

    app.get<{ Querystring: { serial?: string } }>(`${BASE}/done`, async (request, reply) => {
      const { state } = await loadToken(app.db, String(request.query.serial ?? ''))
      if (state.status !== 'active' || state.userId !== user(request).id) return reply.redirect('/security-info', 303)
      // Sent here from a sign-in that asked for a code: Done goes back to it.
      return page(request, reply, 'security-info/hardware-token/done', { title: 'Hardware token', serial: state.serial, name: methodName(state), next: afterMethodAdded(request) })
    })
  })
}
