// /metrics in Prometheus's text format: never on the public listener by default.
// - TESSERA_METRICS_TOKEN: served at /metrics on the gateway's listener to a caller with that bearer token;
// - TESSERA_METRICS_PORT: served at /metrics on a listener of its own (HOST, that port), for a scraper on a
//   private network; with neither, /metrics does not exist.
// The process's counters and histograms (src/metrics.ts) and, read at each scrape, the catch-up
// projections' lag and the database pool's use.
import { timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { Gauge, Registry } from 'prom-client'
import { poolStats } from '../src/db/database.js'
import { httpRequests, processRegistry } from '../src/metrics.js'

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  // Every request, by its route's pattern (bounded), not its URL.
  app.addHook('onResponse', async (request, reply) => {
    httpRequests.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })
  const { metricsToken, metricsPort } = app.config
  if (!metricsToken && !metricsPort) return

  const own = new Registry()
  new Gauge({
    name: 'tessera_projection_lag_events', help: 'Events in the log a catch-up projection has not applied yet', labelNames: ['projection'], registers: [own],
    async collect() {
      const rows = (await sql<{ name: string; behind: string | null }>`select c.name, (select max(position) from events) - c.position as behind
        from subscription_checkpoints c`.execute(app.db)).rows
      for (const r of rows) this.set({ projection: r.name.replace(/^projection:/, '') }, Number(r.behind ?? 0))
    },
  })
  new Gauge({
    name: 'tessera_projection_lag_seconds', help: 'Age of the oldest event a catch-up projection has not applied yet (0 when caught up)', labelNames: ['projection'], registers: [own],
    async collect() {
      const rows = (await sql<{ name: string; seconds: number | null }>`select c.name, extract(epoch from now() - (select recorded_at from events e
        where e.position > c.position order by e.position limit 1))::float8 as seconds from subscription_checkpoints c`.execute(app.db)).rows
      for (const r of rows) this.set({ projection: r.name.replace(/^projection:/, '') }, Math.max(0, r.seconds ?? 0))
    },
  })
  new Gauge({
    name: 'tessera_db_pool_connections', help: "The database pool's connections: total, idle, and requests waiting for one", labelNames: ['state'], registers: [own],
    collect() {
      const stats = poolStats(app.db)
      if (!stats) return
      this.set({ state: 'total' }, stats.total)
      this.set({ state: 'idle' }, stats.idle)
      this.set({ state: 'waiting' }, stats.waiting)
    },
  })
  const scrape = async () => {
    const merged = Registry.merge([processRegistry, own])
    return { type: merged.contentType, body: await merged.metrics() }
  }

  if (metricsToken) {
    const expected = Buffer.from(`Bearer ${metricsToken}`)
    app.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
      const given = Buffer.from(String(request.headers.authorization ?? ''))
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'The metrics need their bearer token.' })
      }
      const { type, body } = await scrape()
      return reply.type(type).send(body)
    })
  }
  if (metricsPort) {
    const listener = Fastify({ logger: false })
    listener.get('/metrics', async (_request, reply) => {
      const { type, body } = await scrape()
      return reply.type(type).send(body)
    })
    app.addHook('onReady', async () => {
      await listener.listen({ port: metricsPort, host: app.config.host })
    })
    app.addHook('onClose', async () => {
      await listener.close()
    })
  }
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['db'] })
