// The event store, shared by routes and commands.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PostgresEventStore } from '../src/event-store/postgres.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventStore: PostgresEventStore
  }
}

async function eventStorePlugin(app: FastifyInstance): Promise<void> {
  const store = new PostgresEventStore(app.db)
  app.decorate('eventStore', store)
  app.addHook('onClose', async () => store.close())
}

export default fp(eventStorePlugin, { name: 'event-store', dependencies: ['db'] })
