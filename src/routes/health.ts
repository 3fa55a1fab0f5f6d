// Liveness and readiness for orchestrators and load balancers.
// - /healthz: the process answers.
// - /readyz: the database answers and every migration has run; 503 otherwise, with the reason.
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { pendingMigrations } from '../db/migrate.js'

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))

  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    try {
      await sql`select 1`.execute(app.db)
    } catch {
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' })
    }
    const pending = await pendingMigrations(app.db)
    if (pending.length > 0) {
      return reply.code(503).send({ status: 'unavailable', reason: 'migrations pending', pending })
    }
    return { status: 'ready' }
  })
}
