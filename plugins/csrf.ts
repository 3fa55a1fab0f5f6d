// CSRF tokens for every form. The check runs in preHandler: a form body is parsed only by then.
import fp from 'fastify-plugin'
import csrf from '@fastify/csrf-protection'
import type { FastifyInstance } from 'fastify'

async function csrfPlugin(app: FastifyInstance): Promise<void> {
  await app.register(csrf, { sessionPlugin: '@fastify/secure-session', getToken: (request) => (request.body as Record<string, string> | undefined)?._csrf })
  app.addHook('preHandler', (request, reply, done) => {
    const form = request.headers['content-type']?.startsWith('application/x-www-form-urlencoded')
    if (request.method === 'POST' && form && !request.routeOptions.config?.skipCsrf) {
      app.csrfProtection(request, reply, done)
      return
    }
    done()
  })
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A form post checked some other way (none yet). */
    skipCsrf?: boolean
  }
}

export default fp(csrfPlugin, { name: 'csrf', dependencies: ['session'] })
