// The OpenID provider's interactions: sign in, and "Enter code" when the relying application asks for
// more than a password.
// - The gateway's own session counts as a sign-in (single sign-on with Security info), except when the
//   application forces a new one (prompt=login, max_age).
// - A user signed in at pwd who is asked for mfa sees only "Enter code" (step-up).
// - A user asked for mfa with no method is offered to add one and is brought back.
// - Attempts are rate limited per user and per address; every result is an event.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { InteractionResults } from 'oidc-provider'
import { TEMPORARY_CODE, useTemporaryCode } from '../../commands/temporary-codes.js'
import { verifyCodeFromAny } from '../../commands/tokens.js'
import type { TokenState } from '../../domain/token/state.js'
import { loadToken } from '../../read-models/tokens.js'
import { recordSignIn } from '../../commands/users.js'
import { TokenError } from '../../domain/token/errors.js'
import { GIVEN_CLAIMS, LEVELS, requestedLevel, unmetEssentialAcr } from '../../oidc/provider.js'
import { activeTokensOfUser } from '../../read-models/tokens.js'
import { clientName as clientNameOf } from '../../read-models/clients.js'
import { clientCache } from '../../oidc/client-cache.js'
import { signedIn, VERIFIED_FOR_MS } from '../guards.js'
import { passwordSignIn } from '../sign-in.js'
import { errorPage, page } from '../render.js'
import { kindOf, methodName } from '../../methods/index.js'
import { codeLength } from '../words.js'
import { methodChoice, sendable } from '../../methods/sent-code/choice.js'
import { sendAndWait } from '../../methods/sent-code/routes.js'

type Provider = Awaited<ReturnType<FastifyInstance['oidcProvider']>>
type Details = Awaited<ReturnType<Provider['interactionDetails']>>

export default async function interactionRoutes(app: FastifyInstance): Promise<void> {
  // Passwords are limited by what fails, per account and per address (routes/sign-in.ts); requests per
  // address only by a flood guard high enough for an office behind one address.
  const floodGuard = app.limit({ max: 300, timeWindow: '1 minute', keyGenerator: (r) => `interaction-ip:${r.ip}` })
  // Codes: per signed-in user too (guessing one user's codes from many addresses).
  const codeLimits = [
    app.limit({ max: 10, timeWindow: '1 minute', keyGenerator: (r) => `interaction-user:${signedIn(r)?.id ?? r.ip}` }),
    floodGuard,
  ]

  async function details(request: FastifyRequest, reply: FastifyReply): Promise<Details | null> {
    try {
      const d = await (await app.oidcProvider()).interactionDetails(request.raw, reply.raw)
      return d.uid === (request.params as { uid: string }).uid ? d : null
    } catch (error) {
      if ((error as Error).name === 'SessionNotFound') return null
      throw error
    }
  }

  // Nothing is left of the sign-in to return to the application with: the person goes back to it themselves.
  const expired = (_request: FastifyRequest, reply: FastifyReply) =>
    errorPage(reply, 400, 'This sign-in has expired', 'Go back to the application and sign in again.', reply.request.id,
      { href: '/security-info', label: 'Go to Security info' })

  /**
   * The interaction's forms end in a redirect to the relying application, and browsers apply the CSP's
   * form-action to that whole chain: allow the (already validated) redirect URI's origin too.
   */
  function allowReturn(reply: FastifyReply, d: Details): void {
    let origin = ''
    try {
      origin = new URL(String(d.params.redirect_uri)).origin
    } catch {
      return
    }
    const csp = String(reply.getHeader('content-security-policy') ?? '')
    if (csp) reply.header('content-security-policy', csp.replace(/form-action 'self'/, `form-action 'self' ${origin}`))
  }

  /** Applications' names, kept as the provider keeps their metadata (a change on this process applies at once). */
  const names = clientCache<string>()
  const clientName = async (d: Details) => {
    const clientId = String(d.params.client_id)
    return (await names.get(clientId, () => clientNameOf(app.db, clientId)))!
  }

  /**
   * Stores the interaction's result and sends the browser back to the provider: provider.interactionResult
   * without mergeWithLastSubmission, on the interaction this request already loaded (it would read it again).
   */
  async function finish(reply: FastifyReply, d: Details, result: InteractionResults) {
    d.result = result
    await d.persist()
    return reply.redirect(d.returnTo, 303)
  }

  /**
   * Ends the interaction at mfa, or at mfa-unrestricted when the application asked for it and the code came
   * from a method NIST does not restrict; amr names what the code came from (RFC 8176), between pwd and mfa.
   */
  function finishMfa(reply: FastifyReply, d: Details, accountId: string, method: { amr: readonly string[]; restricted: boolean }) {
    const acr = requestedLevel(d.params) === LEVELS.mfaUnrestricted && !method.restricted ? LEVELS.mfaUnrestricted : LEVELS.mfa
    return finish(reply, d, {
      login: { accountId, acr, amr: ['pwd', ...method.amr, 'mfa'], ts: Math.floor(app.commands.now().getTime() / 1000), remember: true },
    })
  }

  /** Only methods NIST does not restrict answer a request for mfa-unrestricted. */
  const unrestrictedOnly = (d: Details) => requestedLevel(d.params) === LEVELS.mfaUnrestricted

  /** The user the gateway's session vouches for in this interaction, or null when a password is due. */
  function vouchedUser(request: FastifyRequest, d: Details) {
    const user = signedIn(request)
    if (!user) return null
    const forced = d.prompt.reasons.includes('login_prompt') || d.prompt.reasons.includes('max_age')
    if (forced && request.session.get('interactionPassword') !== d.uid) return null
    if (d.session?.accountId && d.session.accountId !== user.id) return null
    return user
  }

  async function activeMethods(userId: string) {
    return (await activeTokensOfUser(app.db, userId)).map(methodChoice)
  }

  /** The Enter code page, with the methods a code can be sent to (a notice or error after sending one). */
  async function codePage(request: FastifyRequest, reply: FastifyReply, d: Details, userId: string, extra: { sent?: string; errors?: Record<string, string> } = {}, status = 200) {
    const strict = unrestrictedOnly(d)
    const methods = (await activeMethods(userId)).filter((m) => !strict || !m.restricted)
    const name = await clientName(d)
    if (methods.length === 0) return page(request, reply, 'interaction/no-method', { title: 'Add a sign-in method', uid: d.uid, clientName: name, errors: extra.errors ?? {} }, status)
    return page(request, reply, 'interaction/code', { title: 'Enter code', uid: d.uid, clientName: name, methods, targets: sendable(methods), sent: extra.sent, errors: extra.errors ?? {},
      sendAction: `/interaction/${d.uid}/send`, strict }, status)
  }

  app.get<{ Params: { uid: string } }>('/interaction/:uid', async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    const user = vouchedUser(request, d)
    if (!user) return page(request, reply, 'interaction/login', { title: 'Sign in', uid: d.uid, clientName: await clientName(d) })
    if (unmetEssentialAcr(d.params.claims)) {
      return finish(reply, d, { error: 'unmet_authentication_requirements', error_description: 'The essential acr asked for is not one this gateway gives.' })
    }
    if (d.prompt.name === 'consent') {
      const grant = new (await app.oidcProvider()).Grant({ accountId: user.id, clientId: String(d.params.client_id) })
      grant.addOIDCScope(String(d.params.scope ?? 'openid'))
      const asked = [...((d.prompt.details.missingOIDCClaims as string[] | undefined) ?? [])].filter((c) => GIVEN_CLAIMS.has(c))
      if (asked.length > 0) grant.addOIDCClaims(asked)
      return finish(reply, d, { consent: { grantId: await grant.save() } })
    }
    if (requestedLevel(d.params) !== LEVELS.pwd) {
      // A method added in the middle of this sign-in proved possession with its first code: no second code.
      const proof = request.session.get('possession')
      if (proof?.uid === d.uid && app.commands.now().getTime() - proof.at <= VERIFIED_FOR_MS) {
        request.session.set('possession', undefined)
        const { state } = await loadToken(app.db, proof.serial)
        if (state.status === 'active' && state.userId === user.id && !(unrestrictedOnly(d) && kindOf(state).restricted)) {
          await recordSignIn(app.commands, user.id, 'otp', app.eventMetadata(request, { type: 'user', id: user.id }, String(d.params.client_id)))
          return finishMfa(reply, d, user.id, kindOf(state))
        }
      }
      return codePage(request, reply, d, user.id)
    }
    const ts = Math.floor((request.session.get('authenticatedAt') ?? app.commands.now().getTime()) / 1000)
    return finish(reply, d, { login: { accountId: user.id, acr: LEVELS.pwd, amr: ['pwd'], ts, remember: true } })
  })

  app.post<{ Params: { uid: string }; Body: { upn?: string; password?: string } }>('/interaction/:uid/login', { preHandler: floodGuard }, async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    const upn = (request.body?.upn ?? '').trim()
    const password = request.body?.password ?? ''
    if (!upn || !password) {
      return page(request, reply, 'interaction/login', { title: 'Sign in', uid: d.uid, clientName: await clientName(d), values: { upn },
        errors: { ...(upn ? {} : { upn: 'Enter your email or username.' }), ...(password ? {} : { password: 'Enter your password.' }) } }, 422)
    }
    const result = await passwordSignIn(app, request, reply, { upn, password, relyingApplication: String(d.params.client_id), interactionUid: d.uid })
    if ('changePassword' in result) return reply.redirect('/password/change', 303)
    if (!('user' in result)) {
      return page(request, reply, 'interaction/login', { title: 'Sign in', uid: d.uid, clientName: await clientName(d), values: { upn },
        errors: { form: result.message } }, result.status)
    }
    return reply.redirect(`/interaction/${d.uid}`, 303)
  })

  app.post<{ Params: { uid: string }; Body: { serial?: string; code?: string } }>('/interaction/:uid/code', { preHandler: codeLimits }, async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    const user = vouchedUser(request, d)
    if (!user) return reply.redirect(`/interaction/${d.uid}`, 303)
    const code = (request.body?.code ?? '').replace(/\s/g, '')
    const clientId = String(d.params.client_id)
    const meta = app.eventMetadata(request, { type: 'user', id: user.id }, clientId)
    const again = async (message: string) => codePage(request, reply, d, user.id, { errors: { code: message } }, 422)
    // A temporary code from an administrator stands in for a token (issued to users who lost theirs).
    if (TEMPORARY_CODE.test(code)) {
      if (unrestrictedOnly(d)) return again(`${await clientName(d)} needs a code from a hardware token: a temporary code is not enough.`)
      if (!(await useTemporaryCode(app.commands, { userId: user.id, code, relyingApplication: clientId }, meta))) {
        return again("That code didn't work. Check the code and try again.")
      }
      request.session.set('verifiedAt', app.commands.now().getTime())
      await recordSignIn(app.commands, user.id, 'otp', meta)
      // RFC 8176: a one-time password, from no particular device.
      return finishMfa(reply, d, user.id, { amr: ['otp'], restricted: true })
    }
    if (!/^\d{6,8}$/.test(code)) {
      const methods = await activeMethods(user.id)
      return again(methods.some((m) => m.send)
        ? `Enter the ${codeLength(methods.map((m) => m.digits))} code from your token or the one we sent you.`
        : `Enter the ${codeLength(methods.map((m) => m.digits))} code displayed on your token.`)
    }
    let used: TokenState
    try {
      used = await verifyCodeFromAny(app.commands, { userId: user.id, code, relyingApplication: clientId, level: requestedLevel(d.params),
        only: unrestrictedOnly(d) ? (t) => !kindOf(t).restricted : undefined }, meta)
    } catch (error) {
      if (error instanceof TokenError) return again(error.message)
      throw error
    }
    request.session.set('verifiedAt', app.commands.now().getTime())
    // Staff pages open on a code from a method NIST does not restrict (routes/guards.ts).
    if (!kindOf(used).restricted) request.session.set('tokenVerifiedAt', app.commands.now().getTime())
    await recordSignIn(app.commands, user.id, 'otp', meta)
    return finishMfa(reply, d, user.id, kindOf(used))
  })

  // A code sent to the user's phone or address, only when they ask for it (never on page load).
  app.post<{ Params: { uid: string }; Body: { serial?: string } }>('/interaction/:uid/send', { preHandler: codeLimits }, async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    const user = vouchedUser(request, d)
    if (!user) return reply.redirect(`/interaction/${d.uid}`, 303)
    // Nothing is sent that the sign-in could not take.
    if (unrestrictedOnly(d)) return codePage(request, reply, d, user.id, { errors: { send: `${await clientName(d)} needs a code from a hardware token: a text message or an email is not enough.` } }, 422)
    const sent = await sendAndWait(app, request, { serial: String(request.body?.serial ?? ''), userId: user.id, purpose: 'sign-in' }, String(d.params.client_id))
    if (!sent.ok) return codePage(request, reply, d, user.id, { errors: { send: sent.message } }, sent.status)
    return codePage(request, reply, d, user.id, { sent: `We sent a code to ${sent.destination}. It expires in ${sent.minutes} minutes.` })
  })

  app.get<{ Params: { uid: string } }>('/interaction/:uid/add-method', async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    if (!vouchedUser(request, d)) return reply.redirect(`/interaction/${d.uid}`, 303)
    request.session.set('returnTo', `/interaction/${d.uid}`)
    return reply.redirect('/security-info/add', 303)
  })

  app.post<{ Params: { uid: string } }>('/interaction/:uid/abort', async (request, reply) => {
    const d = await details(request, reply)
    if (!d) return expired(request, reply)
    allowReturn(reply, d)
    return finish(reply, d, { error: 'access_denied', error_description: 'The user cancelled the sign-in.' })
  })
}
