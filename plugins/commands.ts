// The command context (database, event store, seed vault, clock) that routes hand to src/commands.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CommandContext } from '../src/commands/context.js'
import { openVault } from '../src/crypto/keyring.js'
import type { EventMetadata } from '../src/event-store/types.js'

declare module 'fastify' {
  interface FastifyInstance {
    commands: CommandContext
    /** Metadata for the events a request causes: who, from where, through which request. */
    eventMetadata(request: FastifyRequest, actor: EventMetadata['actor'], relyingApplication?: string | null): EventMetadata
  }
}

async function commandsPlugin(app: FastifyInstance, options: { now?: () => Date }): Promise<void> {
  const vault = openVault(app.config, (message) => app.log.warn(message))
  app.decorate('commands', { db: app.db, store: app.eventStore, vault, now: options.now ?? (() => new Date()) })
  app.decorate('eventMetadata', (request: FastifyRequest, actor: EventMetadata['actor'], relyingApplication: string | null = null) => ({
    correlationId: request.id,
    causationId: null,
    actor,
    requestId: request.id,
    sourceIp: request.ip ?? null,
    userAgent: request.headers['user-agent']?.slice(0, 512) || null,
    relyingApplication,
  }))
}

export default fp(commandsPlugin, { name: 'commands', dependencies: ['db', 'event-store'] })
