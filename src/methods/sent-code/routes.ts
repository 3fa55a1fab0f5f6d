// Add sign-in method > Phone, or > Email, in Entra's steps: where to send the code ("Text me a code",
// "Email me a code"), the code that came, then "Your phone was registered". Like every method, only after
// a code from an existing one (requireVerified); a user who needs an admin's help adds none of these.
// The phone page says plainly what a text message is worth and offers the safer methods the policy allows.
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { activateToken } from '../../commands/tokens.js'
import { SerialUnavailable, TokenError } from '../../domain/token/errors.js'
import { loadToken } from '../../read-models/tokens.js'
import { afterMethodAdded, methodAdded, requireVerified, signedIn, type SignedInUser } from '../../routes/guards.js'
import { page } from '../../routes/render.js'
import { allowedKinds } from '../../routes/security-info/index.js'
import { destinationHashOf, GatewayBusy, issueChallenge, registerSentCodeMethod, sendRefusal, TooManySends, type SentKind } from './challenge.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { BadDestination, countries, parseEmail, parseMobile } from './destination.js'
import { email, phone } from './kind.js'

/** The steps must be finished within this time, or begun again. */
const ENROLL_FOR_MS = 15 * 60 * 1000
/** How long the page waits for a provider to take the message before saying it could not. */
export const SEND_WAIT_MS = 4000

const STEPS = {
  sms: { kind: phone, base: '/security-info/phone', noun: 'phone', sent: 'text', button: 'Text me a code', done: 'Your phone was registered' },
  email: { kind: email, base: '/security-info/email', noun: 'email address', sent: 'email', button: 'Email me a code', done: 'Your email address was registered' },
} as const

/** Sends a code to the method and waits (a few seconds at most) for a provider to take it: what to tell the user. */
export async function sendAndWait(app: FastifyInstance, request: FastifyRequest, input: { serial: string; userId: string; purpose: 'sign-in' | 'activation' },
  relyingApplication: string | null = null): Promise<{ ok: true; destination: string; minutes: number } | { ok: false; status: number; message: string }> {
  try {
    const issued = await issueChallenge(app.commands, app.config.delivery, { ...input, sourceIp: request.ip ?? null },
      app.eventMetadata(request, { type: 'user', id: input.userId }, relyingApplication))
    app.delivery.wake()
    const outcome = await app.delivery.outcome(issued.deliveryId, SEND_WAIT_MS)
    const minutes = Math.round((issued.expiresAt.getTime() - app.commands.now().getTime()) / 60_000)
    const { state } = await loadToken(app.db, input.serial)
    if (outcome === 'sent' || outcome === 'delivered') return { ok: true, destination: issued.destination, minutes }
    return { ok: false, status: 503, message: `We couldn't send ${state.kind === 'sms' ? 'a text' : 'an email'} right now. Try again in a minute, or choose another way to verify.` }
  } catch (error) {
    // Not one of the user's phones or addresses: one answer, whatever it is.
    if (error instanceof SerialUnavailable) return { ok: false, status: 422, message: 'Choose one of your phones or email addresses.' }
    if (error instanceof TooManySends) return { ok: false, status: 429, message: error.message }
    if (error instanceof GatewayBusy) return { ok: false, status: 503, message: error.message }
    if (error instanceof TokenError) return { ok: false, status: 422, message: error.message }
    throw error
  }
}

export default async function sentCodeRoutes(app: FastifyInstance, options: { attemptLimits: preHandlerAsyncHookHandler[] }): Promise<void> {
  const user = (request: FastifyRequest) => signedIn(request) as SignedInUser
  const now = () => app.commands.now().getTime()
  const defaultCountry = process.env.TESSERA_DEFAULT_COUNTRY?.toUpperCase() || 'GB'
  const countryList = countries()

  for (const [kind, step] of Object.entries(STEPS) as [SentKind, (typeof STEPS)[SentKind]][]) {
    const enrollment = (request: FastifyRequest) => {
      const e = request.session.get('enrollSent')
      return e && e.kind === kind && now() - e.at < ENROLL_FOR_MS ? e : null
    }
    const alternatives = async (userId: string) => (await allowedKinds(app, userId)).filter((k) => k.kind !== step.kind.kind)

    const destinationPage = async (request: FastifyRequest, reply: FastifyReply, extra: { values?: Record<string, string>; errors?: Record<string, string> } = {}, status = 200) =>
      page(request, reply, 'security-info/sent-code/destination', { title: step.kind.label, kind, step, countries: countryList,
        values: { country: defaultCountry, ...extra.values }, errors: extra.errors ?? {}, alternatives: await alternatives(user(request).id) }, status)

    await app.register(async (steps) => {
      steps.addHook('preHandler', requireVerified(app.db, now))
      // A user whose methods are gone needs an admin; they add no phone or address of their own.
      steps.addHook('preHandler', async (request, reply) => {
        if (!(await allowedKinds(app, user(request).id)).includes(step.kind)) {
          return page(request, reply, 'security-info/sent-code/destination', { title: step.kind.label, kind, step, countries: countryList, values: {}, alternatives: [],
            errors: { form: `Your security policy does not allow a ${step.noun} as a sign-in method. Choose another method.` } }, 403)
        }
        if (request.methodChangeAccess === 'admin') {
          return page(request, reply, 'security-info/sent-code/destination', { title: step.kind.label, kind, step, countries: countryList, values: {}, alternatives: [],
            errors: { form: `Ask your administrator to add a ${step.noun} for you, or to give you a temporary code.` } }, 403)
        }
      })

      steps.get(step.base, async (request, reply) => destinationPage(request, reply))

      steps.post<{ Body: { country?: string; number?: string; address?: string } }>(step.base, { preHandler: options.attemptLimits }, async (request, reply) => {
        const u = user(request)
        const values = { country: request.body?.country ?? defaultCountry, number: request.body?.number ?? '', address: request.body?.address ?? '' }
        let destination: string
        try {
          destination = kind === 'sms' ? parseMobile(values.number, values.country) : parseEmail(values.address)
        } catch (error) {
          if (error instanceof BadDestination) return destinationPage(request, reply, { values, errors: { [kind === 'sms' ? 'number' : 'address']: error.message } }, 422)
          throw error
        }
        // Over a send budget: refused before anything is registered.
        const refusal = await sendRefusal(app.db, { userId: u.id, hash: destinationHashOf(app.commands, destination), sourceIp: request.ip ?? null, now: app.commands.now() },
          { sendsPerHour: (await effectivePolicy(app.db, u.id)).settings.sendsPerHour, sendsPerAddressPerHour: app.config.delivery.sendsPerAddressPerHour })
        if (refusal) return destinationPage(request, reply, { values, errors: { form: refusal.message } }, 429)
        let serial: string
        try {
          serial = (await registerSentCodeMethod(app.commands, { userId: u.id, kind, destination }, app.eventMetadata(request, { type: 'user', id: u.id }))).serial
        } catch (error) {
          if (error instanceof TokenError) return destinationPage(request, reply, { values, errors: { form: error.message } }, 422)
          throw error
        }
        const sent = await sendAndWait(app, request, { serial, userId: u.id, purpose: 'activation' })
        if (!sent.ok) return destinationPage(request, reply, { values, errors: { form: sent.message } }, sent.status)
        request.session.set('enrollSent', { kind, serial, at: now() })
        return reply.redirect(`${step.base}/code?sent=1`, 303)
      })

      const codePage = async (request: FastifyRequest, reply: FastifyReply, serial: string, extra: { notice?: string; errors?: Record<string, string> } = {}, status = 200) => {
        const { state } = await loadToken(app.db, serial)
        return page(request, reply, 'security-info/sent-code/code', { title: step.kind.label, kind, step, destination: state.destination, digits: state.digits,
          notice: extra.notice, errors: extra.errors ?? {} }, status)
      }

      steps.get<{ Querystring: { sent?: string } }>(`${step.base}/code`, async (request, reply) => {
        const e = enrollment(request)
        if (!e) return reply.redirect(step.base, 303)
        const { state } = await loadToken(app.db, e.serial)
        return codePage(request, reply, e.serial, { notice: request.query.sent === '1' ? `We sent a code to ${state.destination}.` : undefined })
      })

      // Another code: the newest is the only one that works.
      steps.post(`${step.base}/resend`, { preHandler: options.attemptLimits }, async (request, reply) => {
        const e = enrollment(request)
        if (!e) return reply.redirect(step.base, 303)
        const sent = await sendAndWait(app, request, { serial: e.serial, userId: user(request).id, purpose: 'activation' })
        if (!sent.ok) return codePage(request, reply, e.serial, { errors: { code: sent.message } }, sent.status)
        return codePage(request, reply, e.serial, { notice: `We sent a new code to ${sent.destination}. Only the newest code works.` })
      })

      steps.post<{ Body: { code?: string } }>(`${step.base}/code`, { preHandler: options.attemptLimits }, async (request, reply) => {
        const e = enrollment(request)
        if (!e) return reply.redirect(step.base, 303)
        const u = user(request)
        const { state } = await loadToken(app.db, e.serial)
        const code = (request.body?.code ?? '').replace(/\s/g, '')
        if (!new RegExp(`^\\d{${state.digits}}$`).test(code)) return codePage(request, reply, e.serial, { errors: { code: `Enter the ${state.digits}-digit code we sent you.` } }, 422)
        try {
          await activateToken(app.commands, { serial: e.serial, userId: u.id, name: step.kind.defaultName(state), code }, app.eventMetadata(request, { type: 'user', id: u.id }))
        } catch (error) {
          if (error instanceof TokenError) return codePage(request, reply, e.serial, { errors: { code: error.message } }, 422)
          throw error
        }
        request.session.set('enrollSent', undefined)
        methodAdded(request, e.serial, now())
        return reply.redirect(`${step.base}/done?serial=${encodeURIComponent(e.serial)}`, 303)
      })
    })

    app.post(`${step.base}/cancel`, async (request, reply) => {
      request.session.set('enrollSent', undefined)
      return reply.redirect('/security-info', 303)
    })

    app.get<{ Querystring: { serial?: string } }>(`${step.base}/done`, async (request, reply) => {
      const { state } = await loadToken(app.db, String(request.query.serial ?? ''))
      if (state.status !== 'active' || state.userId !== user(request).id || state.kind !== kind) return reply.redirect('/security-info', 303)
      return page(request, reply, 'security-info/sent-code/done', { title: step.kind.label, step, destination: state.destination, next: afterMethodAdded(request) })
    })
  }
}
