// "Update your password": after a right temporary password (an admin's reset), the user chooses their own
// before anything else; then the sign-in goes on where it was (the application's, or Security info).
// The temporary password opened nothing else: no session exists until this page succeeds.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { changeTemporaryPassword, passwordProblem, PasswordNotChanged } from '../commands/accounts.js'
import { findUser } from '../read-models/users.js'
import { page, safeReturnTo } from './render.js'
import { completeSignIn, PASSWORD_CHANGE_MS, type PendingPasswordChange } from './sign-in.js'

const TITLE = 'Update your password'

export default async function passwordRoutes(app: FastifyInstance): Promise<void> {
  /** The pending change, while it is fresh; else null. */
  function pendingOf(request: FastifyRequest): PendingPasswordChange | null {
    const pending = request.session.get('passwordChange') as PendingPasswordChange | undefined
    return pending && app.commands.now().getTime() - pending.at <= PASSWORD_CHANGE_MS ? pending : null
  }

  const startAgain = (request: FastifyRequest, reply: FastifyReply) => {
    request.session.set('passwordChange', undefined)
    return page(request, reply, 'login', { title: 'Sign in', errors: { form: 'Sign in again with your temporary password to choose a new one.' } }, 401)
  }

  async function form(request: FastifyRequest, reply: FastifyReply, pending: PendingPasswordChange, errors: Record<string, string> = {}, status = 200) {
    const user = await findUser(app.db, pending.userId)
    reply.header('cache-control', 'no-store')
    return page(request, reply, 'password-change', { title: TITLE, upn: user?.upn ?? '', errors }, status)
  }

  app.get('/password/change', async (request, reply) => {
    const pending = pendingOf(request)
    if (!pending) return startAgain(request, reply)
    return form(request, reply, pending)
  })

  app.post<{ Body: { password?: string; confirm?: string } }>('/password/change', {
    preHandler: app.limit({ max: 30, timeWindow: '1 minute', keyGenerator: (r) => `password-change:${r.ip}` }),
  }, async (request, reply) => {
    const pending = pendingOf(request)
    if (!pending) return startAgain(request, reply)
    const password = request.body?.password ?? ''
    const confirm = request.body?.confirm ?? ''
    const problem = passwordProblem(password, confirm)
    if (problem) return form(request, reply, pending, { [problem.field]: problem.message }, 422)
    const meta = app.eventMetadata(request, { type: 'user', id: pending.userId }, pending.relyingApplication ?? null)
    let passwordAt: Date
    try {
      passwordAt = await changeTemporaryPassword(app.commands, { userId: pending.userId, since: pending.since, password }, meta)
    } catch (error) {
      if (!(error instanceof PasswordNotChanged)) throw error
      if ((error as { field?: string }).field) return form(request, reply, pending, { password: error.message }, 422)
      request.session.set('passwordChange', undefined)
      return page(request, reply, 'login', { title: 'Sign in', errors: { form: error.message } }, 409)
    }
    const user = await findUser(app.db, pending.userId)
    if (!user || user.disabled) return startAgain(request, reply)
    await completeSignIn(app, request, reply, user, { interactionUid: pending.interactionUid, relyingApplication: pending.relyingApplication ?? null, passwordAt })
    request.session.set('notices', [...(request.session.get('notices') ?? []), 'Your password was changed.'])
    if (pending.interactionUid) return reply.redirect(`/interaction/${encodeURIComponent(pending.interactionUid)}`, 303)
    return reply.redirect(safeReturnTo(pending.returnTo) ?? '/security-info', 303)
  })
}
