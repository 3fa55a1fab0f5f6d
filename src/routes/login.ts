// Sign in with a user principal name and password; sign out.
// - One answer for an unknown user and a wrong password.
// - Attempts are rate limited per address.
// - A new sign-in starts a new session (no fixation).
import type { FastifyInstance } from 'fastify'
import { authenticate, recordSignIn } from '../commands/users.js'
import { startSession } from './guards.js'
import { page, safeReturnTo } from './render.js'

export default async function loginRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', async (_request, reply) => reply.redirect('/security-info', 303))

  app.get('/login', async (request, reply) => page(request, reply, 'login', { title: 'Sign in' }))

  app.post<{ Body: { upn?: string; password?: string } }>('/login', {
    preHandler: app.rateLimit({ max: 20, timeWindow: '1 minute', keyGenerator: (r) => `login:${r.ip}` }),
  }, async (request, reply) => {
    const upn = String(request.body?.upn ?? '').trim()
    const password = String(request.body?.password ?? '')
    const errors: Record<string, string> = {}
    if (!upn) errors.upn = 'Enter your email or username.'
    if (!password) errors.password = 'Enter your password.'
    if (Object.keys(errors).length > 0) return page(request, reply, 'login', { title: 'Sign in', values: { upn }, errors }, 422)

    const user = await authenticate(app.commands, upn, password)
    if (!user) {
      return page(request, reply, 'login', { title: 'Sign in', values: { upn },
        errors: { form: 'Your account or password is incorrect.' } }, 401)
    }
    const returnTo = safeReturnTo(request.session.get('returnTo')) ?? '/security-info'
    startSession(request, user, app.commands.now().getTime())
    await recordSignIn(app.commands, user.id, 'pwd', app.eventMetadata(request, { type: 'user', id: user.id }))
    return reply.redirect(returnTo, 303)
  })

  app.post('/logout', async (request, reply) => {
    request.session.delete()
    return reply.redirect('/login', 303)
  })
}
