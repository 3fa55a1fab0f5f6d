// Liveness and readiness for orchestrators and load balancers.
// - /healthz: the process answers.
// - /readyz: each dependency by name. database and migrations must be ok, or 503. Redis, when configured,
//   may be down: the gateway then counts rate limits and failures per process (never not at all) and says
//   "degraded" with 200, as it still serves safely; shared limits come back when Redis does.
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { pendingMigrations } from '../db/migrate.js'

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }))

  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const checks: Record<string, string> = {}
    let database = true
    try {
      await sql`select 1`.execute(app.db)
      checks.database = 'ok'
    } catch {
      database = false
      checks.database = 'unreachable'
    }
    let pending: string[] = []
    if (database) {
      pending = await pendingMigrations(app.db)
      checks.migrations = pending.length === 0 ? 'ok' : `pending: ${pending.join(', ')}`
    } else {
      checks.migrations = 'unknown (no database)'
    }
    if (app.config.redisUrl) {
      checks.redis = (await app.pingLimits()) ? 'ok' : 'unreachable: rate limits and failure counts are per process until it is back'
    } else {
      checks.redis = 'not configured: rate limits are per process'
    }
    if (!database || pending.length > 0) {
      return reply.code(503).send({ status: 'unavailable', reason: !database ? 'database unreachable' : 'migrations pending', ...(pending.length ? { pending } : {}), checks })
    }
    return { status: app.limitsState() === 'per-process' ? 'degraded' : 'ready', checks }
  })
}
