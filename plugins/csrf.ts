// CSRF tokens for every form. The check runs in preHandler: a form body is parsed only by then.
import fp from 'fastify-plugin'
import csrf from '@fastify/csrf-protection'
import type { FastifyInstance } from 'fastify'

async function csrfPlugin(app: FastifyInstance): Promise<void> {
  await app.register(csrf, { sessionPlugin: '@fastify/secure-session', getToken: (request) => (request.body as Record<string, string> | undefined)?._csrf })
  // Every state-changing request, whatever its content type (a text/plain form posts too), unless
  // the route authenticates some other way (a bearer key) and says so with skipCsrf.
  app.addHook('preHandler', (request, reply, done) => {
    const changes = !['GET', 'HEAD', 'OPTIONS'].includes(request.method)
    if (changes && !request.routeOptions.config?.skipCsrf) {
      app.csrfProtection(request, reply, done)
      return
    }
    done()
  })
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A request authenticated some other way (a bearer key), so no CSRF token is asked for. */
    skipCsrf?: boolean
  }
}

export default fp(csrfPlugin, { name: 'csrf', dependencies: ['session'] })
