// The gateway, top to bottom: plugins in the order they depend on each other, then routes,
// then the error and not-found handlers.
import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { AppConfig } from '../fastify.config.js'
import dbPlugin from '../plugins/db.js'
import eventStorePlugin from '../plugins/event-store.js'
import projectionsPlugin from '../plugins/projections.js'
import commandsPlugin from '../plugins/commands.js'
import csrfPlugin from '../plugins/csrf.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import securityHeadersPlugin from '../plugins/security-headers.js'
import sessionPlugin from '../plugins/session.js'
import deliveryPlugin from '../plugins/delivery.js'
import softwareTokensPlugin from '../plugins/software-tokens.js'
import remoteServicesPlugin from '../plugins/remote-services.js'
import metricsPlugin from '../plugins/metrics.js'
import viewsPlugin from '../plugins/views.js'
import formbody from '@fastify/formbody'
import healthRoutes from './routes/health.js'
import passwordRoutes from './routes/password.js'
import loginRoutes from './routes/login.js'
import securityInfoRoutes from './routes/security-info/index.js'
import { activateRoutes } from './methods/authenticator-app/routes.js'
import adminApiRoutes from './routes/admin/api.js'
import adminPageRoutes from './routes/admin/pages.js'
import remoteServiceRoutes from './methods/remote/routes.js'
import interactionRoutes from './routes/interaction/index.js'
import upstreamRoutes from './routes/upstream.js'
import auditRoutes from './routes/audit/index.js'
import oidcPlugin from '../plugins/oidc.js'
import openapiPlugin from '../plugins/openapi.js'
import { EventStoreError, WrongExpectedVersion } from './event-store/errors.js'
import { errorPage } from './routes/render.js'
import { databaseUnavailable } from './db/database.js'
import { checkFormShape } from './routes/form-shape.js'

export interface AppOptions {
  config: AppConfig
  /** The database to use; server.ts resolves the embedded default before building the app. */
  databaseUrl: string
  /** The clock for decisions; tests pass a fixed one. */
  now?: () => Date
}

async function app(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  fastify.decorate('config', options.config)

  // Plugins
  await fastify.register(dbPlugin, { databaseUrl: options.databaseUrl })
  await fastify.register(eventStorePlugin)
  await fastify.register(projectionsPlugin, { databaseUrl: options.databaseUrl })
  await fastify.register(commandsPlugin, { now: options.now })
  await fastify.register(securityHeadersPlugin)
  await fastify.register(formbody, { bodyLimit: 16 * 1024 })
  await fastify.register(sessionPlugin)
  await fastify.register(csrfPlugin)
  await fastify.register(rateLimitPlugin)
  await fastify.register(deliveryPlugin)
  await fastify.register(softwareTokensPlugin)
  await fastify.register(remoteServicesPlugin)
  await fastify.register(metricsPlugin)
  await fastify.register(viewsPlugin)
  await fastify.register(oidcPlugin)
  await fastify.register(openapiPlugin)

  // Error and not-found handlers come before the routes: a route keeps the handler it was registered under.
  // 4xx errors say what went wrong; 5xx errors are logged with the request id and say nothing more.
  // A browser gets the error page, anything else JSON.
  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof WrongExpectedVersion) {
      // Another request changed the same thing at the same moment, more often than the command retries.
      error = Object.assign(new Error('Someone else changed this at the same moment. Try again.'), { statusCode: 409, name: 'Conflict' }) as FastifyError
    }
    if (databaseUnavailable(error)) {
      // The database is stopped or restarting: nothing was done; the same request works once it is back.
      request.log.warn({ err: { name: error.name, code: error.code, message: error.message } }, 'database unavailable')
      reply.header('retry-after', '5')
      error = Object.assign(new Error("We can't reach our database right now. Try again in a moment."), { statusCode: 503, name: 'ServiceUnavailable' }) as FastifyError
    }
    const status = error.statusCode ?? (error instanceof EventStoreError ? 400 : 500)
    if (status >= 500 && status !== 503) request.log.error({ err: error }, 'request failed')
    else request.log.info({ err: { name: error.name, message: error.message } }, 'request refused')
    const csrf = status === 403 && /CSRF/.test(error.code ?? '')
    const heading = csrf ? 'This form has expired'
      : status === 429 ? 'Too many attempts' : status === 503 ? 'Service unavailable' : status >= 500 ? 'Something went wrong' : 'That request could not be handled'
    const message = csrf ? 'Go back, reload the page and try again.'
      : status === 503 ? error.message : status >= 500 ? 'Something went wrong on our side. Try again in a moment.' : error.message
    if (wantsHtml(request.headers.accept)) {
      // In the middle of an OpenID sign-in, the way back is to the application (with an error it understands).
      const uid = /^\/interaction\/([\w-]+)/.exec(request.url)?.[1]
      return errorPage(reply, status, heading, message, request.id,
        uid ? { action: `/interaction/${uid}/abort`, label: 'Back to the application' } : undefined)
    }
    return reply.code(status).send(status === 503
      ? { error: 'Service Unavailable', message, requestId: request.id }
      : status >= 500
      ? { error: 'Internal Server Error', message, requestId: request.id }
      : { error: error.name === 'Error' ? heading : error.name, message })
  })

  fastify.setNotFoundHandler((request, reply) => {
    const message = `No page at ${request.method} ${request.url.split('?')[0]}`
    if (wantsHtml(request.headers.accept)) return errorPage(reply, 404, 'Page not found', "We couldn't find that page.")
    return reply.code(404).send({ error: 'Not Found', message })
  })

  // Every page form is text, checked before any limiter or handler sees it (routes/form-shape.ts).
  fastify.addHook('preValidation', checkFormShape)

  // Routes
  await fastify.register(healthRoutes)
  await fastify.register(loginRoutes)
  await fastify.register(passwordRoutes)
  await fastify.register(upstreamRoutes)
  await fastify.register(securityInfoRoutes)
  await fastify.register(activateRoutes)
  await fastify.register(adminApiRoutes)
  await fastify.register(adminPageRoutes)
  await fastify.register(remoteServiceRoutes)
  await fastify.register(interactionRoutes)
  await fastify.register(auditRoutes)
}

function wantsHtml(accept: string | undefined): boolean {
  return !!accept && accept.includes('text/html')
}

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
  }
}

// Not encapsulated: the server and tests reach db, eventStore and the rest on the root instance.
export default fp(app, { name: 'tessera' })
