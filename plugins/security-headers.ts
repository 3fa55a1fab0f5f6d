// Security headers (helmet) with a strict Content Security Policy: our own styles, no scripts. Nothing in
// them depends on the request, so helmet runs once at start-up and its headers are set as they are on every
// response (@fastify/helmet built its configuration again on every request). They go on the raw response,
// so the OpenID provider's own pages, served outside Fastify's reply, carry them too.
import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import helmet from 'helmet'
import type { FastifyInstance } from 'fastify'

/** The headers helmet sets with `options`, read off a response it is given once. */
export function helmetHeaders(options: Parameters<typeof helmet>[0]): [string, string][] {
  const headers: [string, string][] = []
  const res = { setHeader: (name: string, value: string) => void headers.push([name, String(value)]), removeHeader: () => {} }
  let done = false
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, () => { done = true })
  if (!done) throw new Error('helmet did not finish at once: its headers depend on something asynchronous')
  return headers
}

async function securityHeaders(app: FastifyInstance): Promise<void> {
  const headers = helmetHeaders({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: app.config.publicUrl.startsWith('https://'),
  })
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of headers) reply.raw.setHeader(name, value)
    done()
  })
  // Pages and API answers may hold a user's details or a code: no cache (a shared computer's back button,
  // a proxy) keeps them. Static assets, and a route that sets its own Cache-Control, keep theirs.
  app.addHook('onSend', async (request, reply) => {
    if (!reply.hasHeader('cache-control') && !request.url.startsWith('/assets/')) reply.header('cache-control', 'no-store')
  })
}

export default fp(securityHeaders, { name: 'security-headers' })
