// The gateway, top to bottom: plugins in the order they depend on each other, then routes,
// then the error and not-found handlers.
import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { AppConfig } from '../fastify.config.js'
import dbPlugin from '../plugins/db.js'
import eventStorePlugin from '../plugins/event-store.js'
import projectionsPlugin from '../plugins/projections.js'
import healthRoutes from './routes/health.js'
import { EventStoreError } from './event-store/errors.js'

export interface AppOptions {
  config: AppConfig
  /** The database to use; server.ts resolves the embedded default before building the app. */
  databaseUrl: string
}

async function app(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  fastify.decorate('config', options.config)

  // Plugins
  await fastify.register(dbPlugin, { databaseUrl: options.databaseUrl })
  await fastify.register(eventStorePlugin)
  await fastify.register(projectionsPlugin, { databaseUrl: options.databaseUrl })

  // Routes
  await fastify.register(healthRoutes)

  // 4xx errors say what went wrong; 5xx errors are logged with the request id and say nothing more.
  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? (error instanceof EventStoreError ? 400 : 500)
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      return reply.code(status).send({ error: 'Internal Server Error', message: 'Something went wrong on our side.', requestId: request.id })
    }
    return reply.code(status).send({ error: error.name, message: error.message })
  })

  fastify.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'Not Found', message: `No page at ${request.method} ${request.url.split('?')[0]}` })
  })
}

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
  }
}

// Not encapsulated: the server and tests reach db, eventStore and the rest on the root instance.
export default fp(app, { name: 'tessera' })
