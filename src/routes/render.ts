// Renders a page with what every page needs: the signed-in user and a CSRF token.
import type { FastifyReply, FastifyRequest } from 'fastify'

export interface PageData {
  title: string
  values?: Record<string, unknown>
  errors?: Record<string, string>
  [key: string]: unknown
}

export function page(request: FastifyRequest, reply: FastifyReply, template: string, data: PageData, status = 200) {
  const s = request.session
  const user = s.get('userId') ? { upn: s.get('upn'), displayName: s.get('displayName') } : null
  return reply.code(status).type('text/html; charset=utf-8').view(template, {
    values: {},
    errors: {},
    ...data,
    user,
    upstream: request.server.config.upstream ? { name: request.server.config.upstream.name } : null,
    csrfToken: reply.generateCsrf(),
  })
}

/** Only a path on this site, so a crafted link cannot send the user elsewhere after signing in. */
export function safeReturnTo(value: unknown): string | null {
  return typeof value === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(value) ? value : null
}

/** The error page, for a person: a heading, what to do, and for a server fault the request's reference. */
export function errorPage(reply: FastifyReply, status: number, heading: string, message: string, requestId: string | null = null) {
  return reply.code(status).type('text/html; charset=utf-8').view('error', { title: heading, heading, message, requestId, user: null, csrfToken: '' })
}
