// Security info: the user's sign-in methods, adding one, renaming and removing one. Pages follow Entra's
// "My Sign-Ins > Security info".
// - Every change (add, rename, delete) needs a code from an existing method within VERIFIED_FOR_MS
//   (routes/guards.ts methodChangeAccess): a password alone changes nothing.
// - An account that had methods and lost them all needs an admin: a temporary code, or an assigned token.
// - Deleting the last method is allowed with that code, and the page says what it means.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { removeToken, renameToken, verifyCodeFromAny } from '../../commands/tokens.js'
import { TEMPORARY_CODE, useTemporaryCode } from '../../commands/temporary-codes.js'
import { chooseDefaultMethod, defaultMethodOf, NotYourMethod, recordSignIn } from '../../commands/users.js'
import { normalizeName } from '../../domain/token/decide.js'
import { TokenError } from '../../domain/token/errors.js'
import type { TokenState } from '../../domain/token/state.js'
import { DEFAULT_SETTINGS } from '../../domain/policy/events.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { activeTokensOfUser, tokensOfUser } from '../../read-models/tokens.js'
import { methodChangeAccess, requireUser, signedIn, type SignedInUser } from '../guards.js'
import { findUser, recentMethodChanges } from '../../read-models/users.js'
import { describeChange } from '../sign-in.js'
import { page } from '../render.js'
import { codeLength } from '../words.js'
import hardwareTokenRoutes from './hardware-token.js'
import sentCodeRoutes, { sendAndWait } from '../../methods/sent-code/routes.js'
import { authenticatorAppRoutes } from '../../methods/authenticator-app/routes.js'
import { methodChoice, sendable } from '../../methods/sent-code/choice.js'
import { kindOf, METHOD_KINDS, methodName, type MethodKind } from '../../methods/index.js'

/** The kinds of method the user's effective policy lets them add themselves, in the registry's order. */
export async function allowedKinds(app: FastifyInstance, userId: string): Promise<MethodKind[]> {
  const { settings } = await effectivePolicy(app.db, userId)
  return METHOD_KINDS.filter((k) => k.addPath !== null && settings.methods.includes(k.policyMethod))
}

/** Changes to the methods listed on Security info, however often the user signed in since. */
const RECENT_DAYS = 30

export default async function securityInfoRoutes(app: FastifyInstance): Promise<void> {
  const user = (request: FastifyRequest) => signedIn(request) as SignedInUser
  const now = () => app.commands.now().getTime()
  const activeMethods = (userId: string) => activeTokensOfUser(app.db, userId)
  // Per user: the activation rate of the user's effective policy.
  const attemptLimits = [
    app.limit({
      max: async (r) => {
        const u = signedIn(r)
        return u ? (await effectivePolicy(app.db, u.id)).settings.activationAttemptsPerMinute : DEFAULT_SETTINGS.activationAttemptsPerMinute
      },
      timeWindow: '1 minute',
      keyGenerator: (r) => `code-user:${signedIn(r)?.id ?? r.ip}`,
    }),
    // Per address: a flood guard, high enough for an office behind one address.
    app.limit({ max: 300, timeWindow: '1 minute', keyGenerator: (r) => `code-ip:${r.ip}` }),
  ]

  app.addHook('preHandler', requireUser)

  app.get<{ Querystring: { notice?: string } }>('/security-info', async (request, reply) => {
    const u = user(request)
    const [tokens, account, policy] = await Promise.all([tokensOfUser(app.db, u.id), findUser(app.db, u.id), effectivePolicy(app.db, u.id)])
    const canRequestSoftware = policy.settings.userRequestsSoftwareTokens && policy.settings.methods.includes('app')
    const active = tokens.filter((t) => t.status === 'active')
    const methods = active.map((t) => ({
      type: kindOf(t).label, name: methodName(t), serial: t.serial, added: t.activatedAt ?? new Date(0),
    }))
    // Tokens an admin assigned (or an import named the user for), waiting for their first code.
    const pending = tokens.filter((t) => t.status === 'assigned').map((t) => ({ type: kindOf(t).label, name: methodName(t), serial: t.serial }))
    const chosen = defaultMethodOf(active, account?.default_method ?? null)
    const defaultMethod = chosen ? { type: kindOf(chosen).label, name: methodName(chosen) } : null
    const notices: Record<string, string> = {
      removed: 'The sign-in method was deleted.', renamed: 'The name was changed.', default: 'Your default sign-in method was changed.',
    }
    // What changed on the account since the user last signed in: said once.
    const changes = request.session.get('notices') ?? []
    if (changes.length > 0) request.session.set('notices', undefined)
    const recent = (await recentMethodChanges(app.db, user(request).id, new Date(now() - RECENT_DAYS * 86_400_000))).map(describeChange)
    return page(request, reply, 'security-info/index', { title: 'Security info', methods, pending, defaultMethod, canRequestSoftware,
      notice: notices[request.query.notice ?? ''], changes, recent, recentDays: RECENT_DAYS })
  })

  // The choice list is what the user's policy allows; none allowed says so instead of an empty list.
  // An account that needs an admin first is told how to get one.
  app.get('/security-info/add', async (request, reply) => {
    const u = user(request)
    const access = await methodChangeAccess(app.db, request, u.id, now())
    if (access === 'code') return toVerify(request, reply)
    return page(request, reply, 'security-info/add', { title: 'Add a method', methodChoices: await allowedKinds(app, u.id), needsAdmin: access === 'admin' })
  })

  app.post<{ Body: { method?: string } }>('/security-info/add', async (request, reply) => {
    const u = user(request)
    const access = await methodChangeAccess(app.db, request, u.id, now())
    if (access === 'code') return toVerify(request, reply)
    const choices = await allowedKinds(app, u.id)
    const chosen = choices.find((c) => c.kind === request.body?.method)
    if (chosen?.addPath) return reply.redirect(chosen.addPath, 303)
    return page(request, reply, 'security-info/add', { title: 'Add a method', methodChoices: choices, needsAdmin: access === 'admin',
      errors: { method: 'Choose a method from the list.' } }, 422)
  })

  /** Where a verified code takes the user back to: a staff page, or a Security info change they started. */
  const afterVerify = (request: FastifyRequest) => {
    const returnTo = request.session.get('returnTo')
    return returnTo && /^\/(audit|admin|security-info\/(methods\/|default$))/.test(returnTo) ? returnTo : null
  }
  /** What the code opens, in the page's words. */
  const purposeOf = (request: FastifyRequest) => {
    const returnTo = afterVerify(request)
    if (returnTo?.startsWith('/audit')) return 'open the audit pages'
    if (returnTo?.startsWith('/admin')) return 'open the admin pages'
    if (returnTo?.endsWith('/remove')) return 'delete a sign-in method'
    if (returnTo?.endsWith('/rename')) return 'change a sign-in method'
    if (returnTo === '/security-info/default') return 'change your default sign-in method'
    return 'add a sign-in method'
  }
  function toVerify(request: FastifyRequest, reply: FastifyReply) {
    if (request.method === 'GET' && /^\/security-info\/(methods\/|default$)/.test(request.url)) request.session.set('returnTo', request.url)
    // Adding: a change the user started earlier and left is not where the code leads now.
    else if (/^\/security-info\/(methods\/|default$)/.test(request.session.get('returnTo') ?? '')) request.session.set('returnTo', undefined)
    return reply.redirect('/security-info/verify', 303)
  }

  // A code from a method the user already has (or, for an account with none, a temporary code from an
  // admin) before a change to the methods, or before a staff page opens.
  const verifyPage = async (request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) => {
    const methods = await activeMethods(user(request).id)
    const choices = methods.map(methodChoice)
    return page(request, reply, 'security-info/verify', { title: 'Verify your identity', methods: choices, targets: sendable(choices), purpose: purposeOf(request),
      sendAction: '/security-info/verify/send', ...extra }, status)
  }

  app.get('/security-info/verify', async (request, reply) => verifyPage(request, reply))

  // A code sent to the user's phone or address, when they ask for it.
  app.post<{ Body: { serial?: string } }>('/security-info/verify/send', { preHandler: attemptLimits }, async (request, reply) => {
    const sent = await sendAndWait(app, request, { serial: String(request.body?.serial ?? ''), userId: user(request).id, purpose: 'sign-in' })
    if (!sent.ok) return verifyPage(request, reply, { errors: { send: sent.message } }, sent.status)
    return verifyPage(request, reply, { sent: `We sent a code to ${sent.destination}. It expires in ${sent.minutes} minutes.` })
  })

  app.post<{ Body: { code?: string } }>('/security-info/verify', { preHandler: attemptLimits }, async (request, reply) => {
    const u = user(request)
    const methods = await activeMethods(u.id)
    const code = (request.body?.code ?? '').replace(/\s/g, '')
    const meta = app.eventMetadata(request, { type: 'user', id: u.id })
    const again = (message: string) => verifyPage(request, reply, { errors: { code: message } }, 422)
    let fromToken = false
    if (TEMPORARY_CODE.test(code)) {
      // A temporary code from an admin: enough to change methods, never to open staff pages.
      if (!(await useTemporaryCode(app.commands, { userId: u.id, code, relyingApplication: null }, meta))) return again("That code didn't work. Check the code and try again.")
    } else {
      if (methods.length === 0) return again('Enter the temporary code your administrator gave you (12 digits).')
      if (!/^\d{6,8}$/.test(code)) return again(methods.some((m) => m.kind === 'sms' || m.kind === 'email')
      ? `Enter the ${codeLength(methods.map((m) => m.digits))} code from your token or the one we sent you.`
      : `Enter the ${codeLength(methods.map((m) => m.digits))} code displayed on your token.`)
      // A code from any of the user's tokens (as Enter code takes it).
      try {
        const used = await verifyCodeFromAny(app.commands, { userId: u.id, code, level: 'mfa' }, meta)
        // Staff pages open only on a code from a method NIST does not restrict (not a text or an e-mail).
        fromToken = !kindOf(used).restricted
      } catch (error) {
        if (error instanceof TokenError) return again(error.message)
        throw error
      }
    }
    request.session.set('verifiedAt', now())
    if (fromToken) request.session.set('tokenVerifiedAt', now())
    await recordSignIn(app.commands, u.id, 'otp', meta)
    const returnTo = afterVerify(request)
    if (returnTo) {
      request.session.set('returnTo', undefined)
      return reply.redirect(returnTo, 303)
    }
    return reply.redirect('/security-info/add', 303)
  })

  // Renaming and deleting: the user's active method, and a fresh code; anything else is "not found" or
  // the verify step first. Nothing is written before both hold.
  async function changeable(request: FastifyRequest<{ Params: { serial: string } }>, reply: FastifyReply): Promise<TokenState | null> {
    const u = user(request)
    const methods = await activeMethods(u.id)
    const token = methods.find((t) => t.serial === request.params.serial)
    if (!token) {
      await reply.callNotFound()
      return null
    }
    if ((await methodChangeAccess(app.db, request, u.id, now())) !== 'allowed') {
      await toVerify(request, reply)
      return null
    }
    return token
  }

  app.get<{ Params: { serial: string } }>('/security-info/methods/:serial/rename', async (request, reply) => {
    const token = await changeable(request, reply)
    if (!token) return reply
    return page(request, reply, 'security-info/rename', { title: 'Change name', serial: token.serial, values: { name: methodName(token) } })
  })

  app.post<{ Params: { serial: string }; Body: { name?: string } }>('/security-info/methods/:serial/rename', async (request, reply) => {
    const token = await changeable(request, reply)
    if (!token) return reply
    const name = request.body?.name ?? ''
    if (!normalizeName(name)) {
      return page(request, reply, 'security-info/rename', { title: 'Change name', serial: token.serial, values: { name },
        errors: { name: 'Give your token a name of 1 to 64 characters.' } }, 422)
    }
    const u = user(request)
    await renameToken(app.commands, { serial: token.serial, userId: u.id, name }, app.eventMetadata(request, { type: 'user', id: u.id }))
    return reply.redirect('/security-info?notice=renamed', 303)
  })

  app.get<{ Params: { serial: string } }>('/security-info/methods/:serial/remove', async (request, reply) => {
    const token = await changeable(request, reply)
    if (!token) return reply
    const last = (await activeMethods(user(request).id)).length === 1
    return page(request, reply, 'security-info/remove', { title: 'Delete sign-in method', serial: token.serial, name: methodName(token), last })
  })

  app.post<{ Params: { serial: string } }>('/security-info/methods/:serial/remove', async (request, reply) => {
    const token = await changeable(request, reply)
    if (!token) return reply
    const u = user(request)
    await removeToken(app.commands, { serial: token.serial, userId: u.id }, app.eventMetadata(request, { type: 'user', id: u.id }))
    // Without a method left, the code entered for this removal vouches for nothing more: a new method now
    // needs an admin, as the confirmation page said.
    if ((await activeMethods(u.id)).length === 0) request.session.set('verifiedAt', undefined)
    return reply.redirect('/security-info?notice=removed', 303)
  })

  // Default sign-in method: one of the active methods, changed with a fresh code like any change.
  async function defaultPage(request: FastifyRequest, reply: FastifyReply, extra: { error?: string } = {}, status = 200) {
    const u = user(request)
    const [active, account] = await Promise.all([activeMethods(u.id), findUser(app.db, u.id)])
    if (active.length === 0) return reply.redirect('/security-info', 303)
    const current = defaultMethodOf(active, account?.default_method ?? null)!
    return page(request, reply, 'security-info/default', { title: 'Change default method',
      methods: active.map((t) => ({ serial: t.serial, type: kindOf(t).label, name: methodName(t) })), current: current.serial,
      errors: extra.error ? { serial: extra.error } : {} }, status)
  }
  const mayChange = async (request: FastifyRequest, reply: FastifyReply) => {
    if ((await methodChangeAccess(app.db, request, user(request).id, now())) === 'allowed') return true
    await toVerify(request, reply)
    return false
  }

  app.get('/security-info/default', async (request, reply) => {
    if (!(await mayChange(request, reply))) return reply
    return defaultPage(request, reply)
  })

  app.post<{ Body: { serial?: string } }>('/security-info/default', async (request, reply) => {
    if (!(await mayChange(request, reply))) return reply
    const u = user(request)
    try {
      await chooseDefaultMethod(app.commands, { userId: u.id, serial: request.body?.serial ?? '' }, app.eventMetadata(request, { type: 'user', id: u.id }))
    } catch (error) {
      if (error instanceof NotYourMethod) return defaultPage(request, reply, { error: error.message }, 422)
      throw error
    }
    return reply.redirect('/security-info?notice=default', 303)
  })

  await app.register(authenticatorAppRoutes, { attemptLimits })
  await app.register(hardwareTokenRoutes, { attemptLimits })
  await app.register(sentCodeRoutes, { attemptLimits })
}
