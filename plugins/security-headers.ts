// Security headers (@fastify/helmet) with a strict Content Security Policy: our own styles, no scripts.
import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'

async function securityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(helmet, {
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
  // Pages and API answers may hold a user's details or a code: no cache (a shared computer's back button,
  // a proxy) keeps them. Static assets, and a route that sets its own Cache-Control, keep theirs.
  app.addHook('onSend', async (request, reply) => {
    if (!reply.hasHeader('cache-control') && !request.url.startsWith('/assets/')) reply.header('cache-control', 'no-store')
  })
}

export default fp(securityHeaders, { name: 'security-headers' })
