// Runs the catch-up projections (audit index, statistics) behind the event log while the gateway serves.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { catchUpProjections } from '../src/projections/index.js'
import { ProjectionRunner } from '../src/projections/runner.js'

declare module 'fastify' {
  interface FastifyInstance {
    projections: ProjectionRunner
  }
}

export interface ProjectionsPluginOptions {
  /** For LISTEN; other processes' appends wake the runner through it. */
  databaseUrl: string
}

async function projectionsPlugin(app: FastifyInstance, options: ProjectionsPluginOptions): Promise<void> {
  const runner = new ProjectionRunner(app.db, app.eventStore, catchUpProjections, {
    listenUrl: options.databaseUrl,
    onError: (error) => app.log.error({ err: error }, 'catch-up projection failed; retrying'),
  })
  app.decorate('projections', runner)
  app.addHook('onReady', async () => runner.start())
  app.addHook('preClose', async () => runner.stop())
}

export default fp(projectionsPlugin, { name: 'projections', dependencies: ['db', 'event-store'] })
