// Entry point: resolve the database (external, or the embedded default), migrate, listen,
// and on SIGINT/SIGTERM close gracefully: stop accepting, finish in-flight requests, close pools,
// stop the embedded PostgreSQL this process started.
import Fastify, { type FastifyInstance } from 'fastify'
import { loadConfig, serverOptions, type AppConfig } from '../fastify.config.js'
import app from './app.js'
import { createDatabase } from './db/database.js'
import { startEmbedded, type EmbeddedPostgres } from './db/embedded-postgres.js'
import { migrateToLatest } from './db/migrate.js'

export interface RunningServer {
  app: FastifyInstance
  embedded: EmbeddedPostgres | null
  close(): Promise<void>
}

export async function startServer(config: AppConfig): Promise<RunningServer> {
  const fastify = Fastify(serverOptions(config))
  let embedded: EmbeddedPostgres | null = null
  let databaseUrl = config.databaseUrl
  if (!databaseUrl) {
    embedded = await startEmbedded(config.dataDir, {
      database: 'tessera',
      own: true,
      log: (message) => fastify.log.info(message),
    })
    databaseUrl = embedded.url
  }
  try {
    const db = createDatabase(databaseUrl, { max: 1 })
    try {
      const { results } = await migrateToLatest(db)
      for (const r of results ?? []) fastify.log.info({ migration: r.migrationName }, 'migration applied')
    } finally {
      await db.destroy()
    }
    await fastify.register(app, { config, databaseUrl })
    await fastify.listen({ port: config.port, host: config.host })
  } catch (error) {
    await fastify.close().catch(() => {})
    if (embedded?.startedHere) await embedded.stop()
    throw error
  }
  let closing: Promise<void> | null = null
  return {
    app: fastify,
    embedded,
    close() {
      closing ??= (async () => {
        await fastify.close()
        if (embedded?.startedHere) {
          fastify.log.info('stopping the embedded PostgreSQL')
          await embedded.stop()
        }
      })()
      return closing
    },
  }
}

async function main(): Promise<void> {
  const config = loadConfig()
  const server = await startServer(config)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      server.app.log.info({ signal }, 'shutting down')
      const force = setTimeout(() => process.exit(1), 30_000)
      force.unref()
      server.close().then(
        () => process.exit(0),
        (error) => {
          server.app.log.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
    })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    process.stderr.write(`tessera: ${(error as Error).message}\n`)
    process.exit(1)
  })
}
