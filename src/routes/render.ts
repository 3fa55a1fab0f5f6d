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

/** Where an error page sends the person: Security info by default, or back to the application they came from. */
export interface ErrorBack {
  /** A link (GET). */
  href?: string
  /** Or a form posted with the page's CSRF token (ending an OpenID sign-in with an error for its application). */
  action?: string
  label: string
}

/**
 * The error page, for a person: a heading, what to do, a reference a helpdesk can search the logs for (the
 * request id), and the way back.
 */
export function errorPage(reply: FastifyReply, status: number, heading: string, message: string, requestId: string | null = reply.request.id,
  back: ErrorBack = { href: '/security-info', label: 'Back to Security info' }) {
  const csrfToken = back.action ? reply.generateCsrf() : ''
  return reply.code(status).type('text/html; charset=utf-8').view('error', { title: heading, heading, message, requestId, user: null, csrfToken, back })
}
