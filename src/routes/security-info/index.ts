// Security info: the user's sign-in methods, adding one (after a code from an existing one), renaming
// and removing one. Pages follow Entra's "My Sign-Ins > Security info".
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { removeToken, renameToken, verifyCode } from '../../commands/tokens.js'
import { recordSignIn } from '../../commands/users.js'
import { normalizeName } from '../../domain/token/decide.js'
import { TokenError } from '../../domain/token/errors.js'
import type { TokenState } from '../../domain/token/state.js'
import { DEFAULT_SETTINGS } from '../../domain/policy/events.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { activeTokensOfUser } from '../../read-models/tokens.js'
import { requireUser, signedIn, type SignedInUser } from '../guards.js'
import { page } from '../render.js'
import hardwareTokenRoutes from './hardware-token.js'

/** The methods a user can add here, and the policy method each is. */
export const METHOD_CHOICES = [{ value: 'hardware-token', label: 'Hardware token', method: 'hardware' }] as const

/** The choices the user's effective policy allows. */
export async function allowedChoices(app: FastifyInstance, userId: string) {
  const { settings } = await effectivePolicy(app.db, userId)
  return METHOD_CHOICES.filter((c) => settings.methods.includes(c.method))
}

export function methodLabel(token: TokenState): string {
  return token.kind === 'totp' || token.kind === 'hotp' ? 'Hardware token' : 'Authenticator'
}

export function defaultName(token: Pick<TokenState, 'manufacturer' | 'model'>): string {
  return [token.manufacturer, token.model].filter(Boolean).join(' ') || 'Hardware token'
}

export default async function securityInfoRoutes(app: FastifyInstance): Promise<void> {
  const user = (request: FastifyRequest) => signedIn(request) as SignedInUser
  const activeMethods = (userId: string) => activeTokensOfUser(app.db, userId)
  // Per user: the activation rate of the user's effective policy.
  const attemptLimits = [
    app.rateLimit({
      max: async (r) => {
        const u = signedIn(r)
        return u ? (await effectivePolicy(app.db, u.id)).settings.activationAttemptsPerMinute : DEFAULT_SETTINGS.activationAttemptsPerMinute
      },
      timeWindow: '1 minute',
      keyGenerator: (r) => `code-user:${signedIn(r)?.id ?? r.ip}`,
    }),
    app.rateLimit({ max: 30, timeWindow: '1 minute', keyGenerator: (r) => `code-ip:${r.ip}` }),
  ]

  app.addHook('preHandler', requireUser)

  app.get<{ Querystring: { notice?: string } }>('/security-info', async (request, reply) => {
    const methods = (await activeMethods(user(request).id)).map((t) => ({
      type: methodLabel(t), name: t.name ?? defaultName(t), serial: t.serial, added: t.activatedAt ?? new Date(0),
    }))
    const notices: Record<string, string> = { removed: 'The sign-in method was deleted.', renamed: 'The name was changed.' }
    return page(request, reply, 'security-info/index', { title: 'Security info', methods, notice: notices[request.query.notice ?? ''] })
  })

  // The choice list is what the user's policy allows; none allowed says so instead of an empty list.
  app.get('/security-info/add', async (request, reply) =>
    page(request, reply, 'security-info/add', { title: 'Add a method', methodChoices: await allowedChoices(app, user(request).id) }))

  app.post<{ Body: { method?: string } }>('/security-info/add', async (request, reply) => {
    const choices = await allowedChoices(app, user(request).id)
    const chosen = choices.find((c) => c.value === request.body?.method)
    if (chosen) return reply.redirect(`/security-info/${chosen.value}/serial`, 303)
    return page(request, reply, 'security-info/add', { title: 'Add a method', methodChoices: choices,
      errors: { method: 'Choose a method from the list.' } }, 422)
  })

  /** The audit or admin page that sent the user here for a code, if one did. */
  const staffPage = (request: FastifyRequest) => {
    const returnTo = request.session.get('returnTo')
    return returnTo?.startsWith('/audit') || returnTo?.startsWith('/admin') ? returnTo : null
  }
  /** What the code opens, in the page's words. */
  const purposeOf = (request: FastifyRequest) => {
    const returnTo = staffPage(request)
    return returnTo ? `open the ${returnTo.startsWith('/audit') ? 'audit' : 'admin'} pages` : 'add a sign-in method'
  }

  // A code from a method the user already has, before another can be added (or a staff page opened).
  app.get('/security-info/verify', async (request, reply) => {
    const methods = await activeMethods(user(request).id)
    if (methods.length === 0) return reply.redirect('/security-info/add', 303)
    return page(request, reply, 'security-info/verify', { title: 'Verify your identity', methods: methods.map(named), purpose: purposeOf(request) })
  })

  app.post<{ Body: { serial?: string; code?: string } }>('/security-info/verify', { preHandler: attemptLimits }, async (request, reply) => {
    const u = user(request)
    const methods = await activeMethods(u.id)
    const serial = String(request.body?.serial ?? '')
    const code = String(request.body?.code ?? '').replace(/\s/g, '')
    const again = (message: string, status: number) => page(request, reply, 'security-info/verify',
      { title: 'Verify your identity', methods: methods.map(named), purpose: purposeOf(request), values: { serial }, errors: { code: message } }, status)
    if (!/^\d{6,8}$/.test(code)) return again('Enter the 6- or 8-digit code displayed on your token.', 422)
    if (!methods.some((m) => m.serial === serial)) return again("That code didn't work. Check the code on your token and try again.", 422)
    try {
      await verifyCode(app.commands, { serial, userId: u.id, code, level: 'mfa' }, app.eventMetadata(request, { type: 'user', id: u.id }))
    } catch (error) {
      if (error instanceof TokenError) return again(error.message, 422)
      throw error
    }
    request.session.set('verifiedAt', app.commands.now().getTime())
    request.session.set('tokenVerifiedAt', app.commands.now().getTime())
    await recordSignIn(app.commands, u.id, 'otp', app.eventMetadata(request, { type: 'user', id: u.id }))
    // Sent here by a page that needs a code (the audit and admin pages): back to it.
    const returnTo = staffPage(request)
    if (returnTo) {
      request.session.set('returnTo', undefined)
      return reply.redirect(returnTo, 303)
    }
    return reply.redirect('/security-info/add', 303)
  })

  app.get<{ Params: { serial: string } }>('/security-info/methods/:serial/rename', async (request, reply) => {
    const token = (await activeMethods(user(request).id)).find((t) => t.serial === request.params.serial)
    if (!token) return reply.callNotFound()
    return page(request, reply, 'security-info/rename', { title: 'Change name', serial: token.serial, values: { name: token.name ?? defaultName(token) } })
  })

  app.post<{ Params: { serial: string }; Body: { name?: string } }>('/security-info/methods/:serial/rename', async (request, reply) => {
    const u = user(request)
    const token = (await activeMethods(u.id)).find((t) => t.serial === request.params.serial)
    if (!token) return reply.callNotFound()
    const name = String(request.body?.name ?? '')
    if (!normalizeName(name)) {
      return page(request, reply, 'security-info/rename', { title: 'Change name', serial: token.serial, values: { name },
        errors: { name: 'Give your token a name of 1 to 64 characters.' } }, 422)
    }
    await renameToken(app.commands, { serial: token.serial, userId: u.id, name }, app.eventMetadata(request, { type: 'user', id: u.id }))
    return reply.redirect('/security-info?notice=renamed', 303)
  })

  app.get<{ Params: { serial: string } }>('/security-info/methods/:serial/remove', async (request, reply) => {
    const token = (await activeMethods(user(request).id)).find((t) => t.serial === request.params.serial)
    if (!token) return reply.callNotFound()
    return page(request, reply, 'security-info/remove', { title: 'Delete sign-in method', serial: token.serial, name: token.name ?? defaultName(token) })
  })

  app.post<{ Params: { serial: string } }>('/security-info/methods/:serial/remove', async (request, reply) => {
    const u = user(request)
    const token = (await activeMethods(u.id)).find((t) => t.serial === request.params.serial)
    if (!token) return reply.callNotFound()
    await removeToken(app.commands, { serial: token.serial, userId: u.id }, app.eventMetadata(request, { type: 'user', id: u.id }))
    return reply.redirect('/security-info?notice=removed', 303)
  })

  await app.register(hardwareTokenRoutes, { attemptLimits })
}

function named(t: TokenState) {
  return { serial: t.serial, name: t.name ?? defaultName(t) }
}
