// Pages of authenticator apps:
// - Security info > Add sign-in method > Authenticator app, in Entra's steps: "Start by getting the app",
//   "Set up your account in the app" (QR code, or "Can't scan image?": account and key), "Enter the
//   6-digit code shown in the app", "Authenticator app was successfully registered". Like every method,
//   only after a code from an existing one (requireVerified).
// - Security info > Request a software token (where the policy allows it): an activation code, shown once.
// - /activate: an activation code and the password, then the key once, then the app's first code. The same
//   exchange in JSON for desktop soft-token apps. Rate limited per address and per code; an unknown, used or
//   expired code gets one answer.
// Pages with a key on them are no-store; the key and the otpauth URI are in no URL, log line or event.
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { TokenError } from '../../domain/token/errors.js'
import { TooManyMethods } from '../../commands/tokens.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { activeTokensOfUser, loadToken } from '../../read-models/tokens.js'
import { findUser, findUserByUpn } from '../../read-models/users.js'
import { checkPassword } from '../../commands/users.js'
import { afterMethodAdded, methodAdded, requireVerified, signedIn, type SignedInUser } from '../../routes/guards.js'
import { page } from '../../routes/render.js'
import { allowedKinds } from '../../routes/security-info/index.js'
import { passwordCheck } from '../../routes/sign-in.js'
import { methodName } from '../index.js'
import {
  ActivationRefused, findActivationCode, formatActivationCode, INVALID_ACTIVATION, normalizeActivationCode, redeemActivationCode, requestActivationCode,
} from './activation-codes.js'
import { authenticatorApp } from './kind.js'
import { appKey, cancelSetup, finishSetup, SETUP_MINUTES, SetupExpired, setupOwner, startSetup, type AppKey } from './setup.js'

const BASE = '/security-info/authenticator-app'
const TITLE = 'Authenticator app'
const SETUP_MS = SETUP_MINUTES * 60_000
const SIX_DIGITS = /^\d{6}$/

const text = (value: unknown) => (typeof value === 'string' ? value : '')
const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store')

/** Security info's steps; registered with the other methods' (routes/security-info). */
export async function authenticatorAppRoutes(app: FastifyInstance, options: { attemptLimits: preHandlerAsyncHookHandler[] }): Promise<void> {
  const user = (request: FastifyRequest) => signedIn(request) as SignedInUser
  const now = () => app.commands.now().getTime()
  const setupOf = (request: FastifyRequest) => {
    const e = request.session.get('enrollApp')
    return e && now() - e.at < SETUP_MS ? e : null
  }
  const keyFor = async (request: FastifyRequest, handle: string) =>
    appKey(app.commands, { handle, userId: user(request).id, issuer: app.config.organization, account: user(request).upn })

  app.post(`${BASE}/cancel`, async (request, reply) => {
    const e = request.session.get('enrollApp')
    if (e) await cancelSetup(app.db, e.handle, user(request).id)
    request.session.set('enrollApp', undefined)
    return reply.redirect('/security-info', 303)
  })

  await app.register(async (steps) => {
    steps.addHook('preHandler', requireVerified(app.db, now))
    steps.addHook('preHandler', async (request, reply) => {
      const refuse = (message: string) => page(request, reply, 'security-info/authenticator-app/start', { title: TITLE, errors: { form: message }, refused: true }, 403)
      if (!(await allowedKinds(app, user(request).id)).includes(authenticatorApp)) {
        return refuse('Your security policy does not allow an authenticator app as a sign-in method. Choose another method.')
      }
      // A user whose methods are gone needs an admin: an activation code, or a temporary code.
      if (request.methodChangeAccess === 'admin') return refuse('Ask your administrator for an activation code or a temporary code first.')
    })

    steps.get(BASE, async (request, reply) => page(request, reply, 'security-info/authenticator-app/start', { title: TITLE }))

    // Next: a new key, replacing one the user began with and left.
    steps.post(BASE, { preHandler: options.attemptLimits }, async (request, reply) => {
      const u = user(request)
      const [active, policy] = await Promise.all([activeTokensOfUser(app.db, u.id), effectivePolicy(app.db, u.id)])
      if (active.length >= policy.settings.maxMethods) {
        return page(request, reply, 'security-info/authenticator-app/start', { title: TITLE, errors: { form: new TooManyMethods(policy.settings.maxMethods).message } }, 422)
      }
      const previous = request.session.get('enrollApp')
      if (previous) await cancelSetup(app.db, previous.handle, u.id)
      const started = await startSetup(app.commands, { userId: u.id, by: 'self', activationCode: null, replace: true })
      request.session.set('enrollApp', { handle: started.handle, at: now() })
      return reply.redirect(`${BASE}/scan`, 303)
    })

    steps.get(`${BASE}/scan`, async (request, reply) => {
      const e = setupOf(request)
      const key = e && (await keyFor(request, e.handle))
      if (!key) return reply.redirect(BASE, 303)
      noStore(reply)
      return page(request, reply, 'security-info/authenticator-app/scan', { title: TITLE, key, minutes: SETUP_MINUTES, next: `${BASE}/code`, back: BASE, cancel: `${BASE}/cancel` })
    })

    steps.get(`${BASE}/code`, async (request, reply) => {
      if (!setupOf(request)) return reply.redirect(BASE, 303)
      return page(request, reply, 'security-info/authenticator-app/code', { title: TITLE, action: `${BASE}/code`, back: `${BASE}/scan`, cancel: `${BASE}/cancel` })
    })

    steps.post<{ Body: { code?: unknown } }>(`${BASE}/code`, { preHandler: options.attemptLimits }, async (request, reply) => {
      const e = setupOf(request)
      if (!e) return reply.redirect(BASE, 303)
      const u = user(request)
      const again = (message: string, status = 422) => page(request, reply, 'security-info/authenticator-app/code',
        { title: TITLE, action: `${BASE}/code`, back: `${BASE}/scan`, cancel: `${BASE}/cancel`, errors: { code: message } }, status)
      const code = text(request.body?.code).replace(/\s/g, '')
      if (!SIX_DIGITS.test(code)) return again('Enter the 6-digit code shown in the app.')
      let token
      try {
        token = await finishSetup(app.commands, { handle: e.handle, userId: u.id, code }, app.eventMetadata(request, { type: 'user', id: u.id }))
      } catch (error) {
        if (error instanceof TokenError) return again(error.message)
        throw error
      }
      request.session.set('enrollApp', undefined)
      methodAdded(request, token.serial, now())
      return reply.redirect(`${BASE}/done?serial=${encodeURIComponent(token.serial)}`, 303)
    })
  })

  app.get<{ Querystring: { serial?: unknown } }>(`${BASE}/done`, async (request, reply) => {
    const { state } = await loadToken(app.db, text(request.query.serial).slice(0, 64))
    if (state.status !== 'active' || state.userId !== user(request).id || state.kind !== 'software') return reply.redirect('/security-info', 303)
    return page(request, reply, 'security-info/authenticator-app/done', { title: TITLE, name: methodName(state), serial: state.serial, next: afterMethodAdded(request) })
  })

  // Request a software token: an activation code for the user's own desktop app, where the policy allows it.
  await app.register(async (steps) => {
    steps.addHook('preHandler', requireVerified(app.db, now))
    const allowed = async (userId: string) => {
      const { settings } = await effectivePolicy(app.db, userId)
      return settings.userRequestsSoftwareTokens && settings.methods.includes('app')
    }
    steps.addHook('preHandler', async (request, reply) => {
      if (request.methodChangeAccess === 'admin' || !(await allowed(user(request).id))) {
        return page(request, reply, 'security-info/authenticator-app/request', { title: 'Request a software token',
          errors: { form: 'Your security policy does not let you request a software token. Ask your administrator.' }, refused: true }, 403)
      }
    })
    steps.get('/security-info/software-token', async (request, reply) => page(request, reply, 'security-info/authenticator-app/request', { title: 'Request a software token' }))
    steps.post('/security-info/software-token', { preHandler: options.attemptLimits }, async (request, reply) => {
      const u = user(request)
      try {
        const issued = await requestActivationCode(app.commands, { userId: u.id, by: 'self', delivery: 'shown', activateUrl: `${app.config.publicUrl}/activate` },
          app.eventMetadata(request, { type: 'user', id: u.id }))
        noStore(reply)
        return page(request, reply, 'security-info/authenticator-app/request', { title: 'Request a software token',
          issued: { code: formatActivationCode(issued.code!), expiresAt: issued.expiresAt, url: `${app.config.publicUrl}/activate` } })
      } catch (error) {
        if (error instanceof ActivationRefused) {
          return page(request, reply, 'security-info/authenticator-app/request', { title: 'Request a software token', errors: { form: error.message } }, error.statusCode)
        }
        throw error
      }
    })
  })
}

/** Per address, and per code: the limits /activate lives with (on top of the password's own). */
export const ACTIVATE_LIMITS = { perAddressPerMinute: 20, perCodePer15Minutes: 5 }

/** /activate: public; the code and the password are the credentials. HTML forms and JSON. */
export async function activateRoutes(app: FastifyInstance): Promise<void> {
  const now = () => app.commands.now().getTime()
  const json = (request: FastifyRequest) => /^application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '')
  // A JSON request cannot come from another site's form (it needs a CORS preflight, which is never
  // allowed): no CSRF token. A form needs one.
  const csrfUnlessJson: preHandlerAsyncHookHandler = async (request, reply) => {
    if (json(request)) return
    await new Promise<void>((resolve, reject) => app.csrfProtection(request, reply, (error?: Error) => (error ? reject(error) : resolve())))
  }
  const perAddress = app.limit({ max: ACTIVATE_LIMITS.perAddressPerMinute, timeWindow: '1 minute', keyGenerator: (r) => `activate-ip:${r.ip}` })
  const perCode = app.limit({
    max: ACTIVATE_LIMITS.perCodePer15Minutes, timeWindow: '15 minutes',
    keyGenerator: (r) => {
      const body = (r.body ?? {}) as Record<string, unknown>
      const code = normalizeActivationCode(body.activationCode)
      return code ? `activate-code:${app.commands.vault.keyedHash('activation-code-limit', code).toString('hex')}` : `activate-code-ip:${r.ip}`
    },
  })
  // Per set-up: the handle the desktop app sends, or the one in the browser's session (hashed: no bearer secret in a key name).
  const perSetup = app.limit({
    max: 10, timeWindow: '10 minutes',
    keyGenerator: (r) => {
      const handle = json(r) ? text(((r.body ?? {}) as Record<string, unknown>).setup).slice(0, 100) : r.session.get('activation')?.handle ?? ''
      return handle ? `activate-setup:${app.commands.vault.keyedHash('activation-setup-limit', handle).toString('hex')}` : `activate-setup-ip:${r.ip}`
    },
  })
  const activation = (request: FastifyRequest) => {
    const a = request.session.get('activation')
    return a && now() - a.at < SETUP_MS ? a : null
  }
  const formPage = (request: FastifyRequest, reply: FastifyReply, extra: { values?: Record<string, string>; errors?: Record<string, string> } = {}, status = 200) =>
    page(request, reply, 'activate/index', { title: 'Activate a software token', values: extra.values ?? {}, errors: extra.errors ?? {} }, status)
  const refuse = (request: FastifyRequest, reply: FastifyReply, status: number, message: string, values: Record<string, string> = {}) =>
    json(request) ? reply.code(status).send({ error: status === 429 ? 'TooManyRequests' : 'ActivationRefused', message }) : formPage(request, reply, { values, errors: { form: message } }, status)

  app.get('/activate', async (request, reply) => formPage(request, reply))

  app.post<{ Body: Record<string, unknown> }>('/activate', { config: { skipCsrf: true }, preHandler: [csrfUnlessJson, perAddress, perCode] }, async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>
    const username = text(body.username).trim().slice(0, 320)
    const password = text(body.password)
    const values = { username }
    if (!text(body.activationCode).trim() || !username || !password) {
      return refuse(request, reply, 422, 'Enter your activation code, your account and your password.', values)
    }
    // One answer for an unknown, used or expired code, a code of someone else's, an unknown account and a
    // wrong password. The password is checked (and a wrong one counted, delays and all) only for the account
    // the live code is for: /activate tells nothing of anyone else's password, and a code alone tells
    // nothing of itself. The other cases spend a password hash's time too.
    const [found, named] = await Promise.all([findActivationCode(app.commands, body.activationCode), findUserByUpn(app.db, username.toLowerCase())])
    if (!found || !named || named.id !== found.userId) {
      await checkPassword(undefined, password)
      return refuse(request, reply, 422, INVALID_ACTIVATION, values)
    }
    const checked = await passwordCheck(app, request, { upn: username, password })
    if (!('user' in checked)) {
      return checked.status === 401 ? refuse(request, reply, 422, INVALID_ACTIVATION, values) : refuse(request, reply, checked.status, checked.message, values)
    }
    if (checked.user.must_change) return refuse(request, reply, 403, 'Sign in and choose a new password first: yours is a temporary one.', values)
    let started
    try {
      started = await redeemActivationCode(app.commands, { code: text(body.activationCode), userId: found.userId },
        app.eventMetadata(request, { type: 'user', id: found.userId }))
    } catch (error) {
      if (error instanceof ActivationRefused) return refuse(request, reply, error.statusCode, error.message, values)
      throw error
    }
    const key = (await appKey(app.commands, { handle: started.handle, userId: found.userId, issuer: app.config.organization, account: checked.user.upn }))!
    noStore(reply)
    // Shown once: the answer to this request, nowhere else.
    if (json(request)) {
      return reply.code(201).send({ serial: key.serial, otpauthUri: key.uri, issuer: key.issuer, account: key.account, setup: started.handle,
        expiresAt: key.expiresAt.toISOString(), next: 'POST /activate/code with setup and the first 6-digit code from the app' })
    }
    request.session.set('activation', { handle: started.handle, userId: found.userId, at: now() })
    return page(request, reply, 'activate/scan', { title: 'Activate a software token', key: key satisfies AppKey, next: '/activate/code', cancel: '/activate/cancel' })
  })

  app.get('/activate/code', async (request, reply) => {
    if (!activation(request)) return reply.redirect('/activate', 303)
    return page(request, reply, 'security-info/authenticator-app/code', { title: 'Activate a software token', action: '/activate/code', cancel: '/activate/cancel' })
  })

  app.post<{ Body: Record<string, unknown> }>('/activate/code', { config: { skipCsrf: true }, preHandler: [csrfUnlessJson, perAddress, perSetup] }, async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>
    const a = json(request) ? null : activation(request)
    if (!json(request) && !a) return reply.redirect('/activate', 303)
    const handle = a ? a.handle : text(body.setup)
    const code = text(body.code).replace(/\s/g, '')
    const again = (status: number, message: string) => json(request)
      ? reply.code(status).send({ error: 'ActivationRefused', message })
      : page(request, reply, 'security-info/authenticator-app/code', { title: 'Activate a software token', action: '/activate/code', cancel: '/activate/cancel', errors: { code: message } }, status)
    if (!handle) return again(422, 'Give the setup you were given with the key.')
    if (!SIX_DIGITS.test(code)) return again(422, 'Enter the 6-digit code shown in the app.')
    const userId = a ? a.userId : await setupOwner(app.db, handle, app.commands.now())
    if (!userId) return again(422, new SetupExpired().message)
    let token
    try {
      token = await finishSetup(app.commands, { handle, userId, code }, app.eventMetadata(request, { type: 'user', id: userId }))
    } catch (error) {
      if (error instanceof TokenError) return again(422, error.message)
      throw error
    }
    if (json(request)) return reply.code(201).send({ serial: token.serial, status: token.status })
    request.session.set('activation', undefined)
    const account = await findUser(app.db, token.userId!)
    return page(request, reply, 'security-info/authenticator-app/done', { title: 'Activate a software token', name: methodName(token), serial: token.serial,
      next: '/security-info', upn: account?.upn })
  })

  app.post('/activate/cancel', async (request, reply) => {
    const a = request.session.get('activation')
    if (a) await cancelSetup(app.db, a.handle, a.userId)
    request.session.set('activation', undefined)
    return reply.redirect('/activate', 303)
  })
}
