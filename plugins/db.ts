// The database: a Kysely instance over a pg pool, closed with the app.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { createDatabase } from '../src/db/database.js'
import type { Db } from '../src/read-models/database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
}

export interface DbPluginOptions {
  databaseUrl: string
  poolSize?: number
}

async function dbPlugin(app: FastifyInstance, options: DbPluginOptions): Promise<void> {
  if (!options.databaseUrl) throw new Error('db plugin: option databaseUrl is required')
  const db = createDatabase(options.databaseUrl, { max: options.poolSize })
  app.decorate('db', db)
  app.addHook('onClose', async () => {
    await db.destroy()
  })
}

export default fp(dbPlugin, { name: 'db' })
