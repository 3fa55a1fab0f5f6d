// Forms post text. Before any limiter or handler runs (preValidation), a page route's body must be an
// object of strings (a list of strings only for the fields a route names in config.formLists), with no
// NUL character and no field longer than MAX_FIELD: anything else (an array where one value is due, an
// object, a number from a JSON body) is bad input, refused with 400 and a message a person understands.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export const MAX_FIELD = 4096

export class MalformedForm extends Error {
  override name = 'MalformedForm'
  statusCode = 400
}

const isText = (v: unknown) => typeof v === 'string' && v.length <= MAX_FIELD && !v.includes('\u0000')

/** Routes whose bodies are JSON checked by their own schemas, and the OpenID provider's own endpoints. */
const OWN_SCHEMAS = /^\/(admin\/api|audit\/api|oidc)(\/|$)/

export async function checkFormShape(request: FastifyRequest): Promise<void> {
  // The address too: each parameter once, as text without NUL (the provider checks its own).
  if (!request.url.startsWith('/oidc')) {
    for (const [name, value] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
      if (!isText(value)) throw new MalformedForm(`The address's "${name.slice(0, 40)}" must be given once, as text.`)
    }
    for (const value of Object.values((request.params ?? {}) as Record<string, unknown>)) {
      if (typeof value === 'string' && value.includes('\u0000')) throw new MalformedForm('The address holds a character that is not allowed.')
    }
  }
  const body = request.body
  // A body that is not an object (a text/plain post) has no fields to read: the CSRF check refuses it.
  if (typeof body !== 'object' || body === null || OWN_SCHEMAS.test(request.url)) return
  if (Array.isArray(body)) throw new MalformedForm('The form was not sent as expected. Reload the page and try again.')
  const lists = request.routeOptions.config?.formLists ?? []
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    const ok = isText(value) || (lists.includes(name) && Array.isArray(value) && value.length <= 64 && value.every(isText))
    if (!ok) throw new MalformedForm(`The field "${name.slice(0, 40)}" was not sent as text. Reload the page and try again.`)
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Form fields that may hold several values (checkboxes of one name). */
    formLists?: string[]
  }
}

/**
 * A multipart form's CSRF token, checked once its fields are read (a multipart body is not parsed before the
 * handler, where the CSRF hook runs). True when it is right; otherwise the 403 has been sent.
 */
export function multipartCsrfAccepted(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, token: string | undefined): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    // A refused token answers 403 through the error handler: the check sends it and calls no callback.
    const refused = () => resolve(false)
    reply.raw.once('finish', refused)
    request.body = { _csrf: token }
    app.csrfProtection(request, reply, (error?: Error) => {
      reply.raw.off('finish', refused)
      resolve(!error)
    })
  })
}
