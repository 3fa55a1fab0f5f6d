// Sign in with a user principal name and password; sign out.
// - One answer for an unknown user and a wrong password; limits per account and per address (sign-in.ts).
// - A new sign-in starts a new session (no fixation), recorded server-side.
// - Sign-out ends everything for this browser: the gateway's session (every copy of its cookie), and the
//   OpenID provider's session with the grants it holds, so the next person at this browser gets nothing.
import type { FastifyInstance } from 'fastify'
import { endGatewaySession } from '../read-models/sessions.js'
import { endProviderSession } from '../oidc/logout.js'
import { passwordSignIn } from './sign-in.js'
import { page, safeReturnTo } from './render.js'

export default async function loginRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', async (_request, reply) => reply.redirect('/security-info', 303))

  app.get<{ Querystring: { signedOut?: string } }>('/login', async (request, reply) =>
    page(request, reply, 'login', { title: 'Sign in', notice: request.query.signedOut === '1' ? 'You have signed out.' : undefined }))

  // Passwords are limited by what fails (sign-in.ts); requests per address only by a flood guard high
  // enough for an office behind one address.
  app.post<{ Body: { upn?: string; password?: string } }>('/login', {
    preHandler: app.limit({ max: 300, timeWindow: '1 minute', keyGenerator: (r) => `login:${r.ip}` }),
  }, async (request, reply) => {
    const upn = (request.body?.upn ?? '').trim()
    const password = request.body?.password ?? ''
    const errors: Record<string, string> = {}
    if (!upn) errors.upn = 'Enter your email or username.'
    if (!password) errors.password = 'Enter your password.'
    if (Object.keys(errors).length > 0) return page(request, reply, 'login', { title: 'Sign in', values: { upn }, errors }, 422)

    const returnTo = safeReturnTo(request.session.get('returnTo')) ?? '/security-info'
    const result = await passwordSignIn(app, request, reply, { upn, password, returnTo })
    if ('changePassword' in result) return reply.redirect('/password/change', 303)
    if (!('user' in result)) return page(request, reply, 'login', { title: 'Sign in', values: { upn }, errors: { form: result.message } }, result.status)
    return reply.redirect(returnTo, 303)
  })

  app.post('/logout', async (request, reply) => {
    const sid = request.session.get('sid')
    if (sid) await endGatewaySession(app.db, sid, app.commands.now())
    await endProviderSession(app, request, reply)
    request.session.regenerate()
    request.session.delete()
    return reply.redirect('/login?signedOut=1', 303)
  })
}
