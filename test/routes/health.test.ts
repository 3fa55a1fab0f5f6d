import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { loadConfig, serverOptions } from '../../fastify.config.js'
import app from '../../src/app.js'
import { testDatabase } from '../helpers/database.js'

async function build(t: Test, databaseUrl: string, logs?: string[]) {
  const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'info' })
  const options = serverOptions(config)
  const stream = { write: (line: string) => void logs?.push(line) }
  const fastify = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  await fastify.register(app, { config, databaseUrl })
  t.teardown(() => fastify.close())
  return fastify
}

t.test('healthz answers; readyz is 200 once the database is migrated', async (t) => {
  const { url } = await testDatabase(t)
  const fastify = await build(t, url)
  const health = await fastify.inject('/healthz')
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await fastify.inject('/readyz')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: { database: 'ok', migrations: 'ok', redis: 'not configured: rate limits are per process' } })
})

t.test('readyz is 503 with pending migrations, naming them', async (t) => {
  const { url } = await testDatabase(t, { migrate: false })
  const fastify = await build(t, url)
  const ready = await fastify.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().reason, 'migrations pending')
  t.ok(ready.json().pending.includes('0001_event_store'))
})

t.test('readyz is 503 when the database cannot be reached; healthz still answers', async (t) => {
  const fastify = await build(t, 'postgres://postgres@127.0.0.1:1/nothing')
  const ready = await fastify.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.same(ready.json(), { status: 'unavailable', reason: 'database unreachable',
    checks: { database: 'unreachable', migrations: 'unknown (no database)', redis: 'not configured: rate limits are per process' } })
  t.equal((await fastify.inject('/healthz')).statusCode, 200)
})

t.test('logs are JSON with a request id; a plain X-Request-Id is kept, a forged one replaced', async (t) => {
  const { url } = await testDatabase(t)
  const logs: string[] = []
  const fastify = await build(t, url, logs)
  const kept = await fastify.inject({ url: '/nope', headers: { 'x-request-id': 'abc-123' } })
  t.equal(kept.statusCode, 404)
  t.match(kept.json(), { error: 'Not Found', message: 'No page at GET /nope' })
  await fastify.inject({ url: '/nope', headers: { 'x-request-id': 'evil\nline', authorization: 'Bearer s3cr3t-token' } })
  const lines = logs.map((l) => JSON.parse(l))
  t.ok(lines.some((l) => l.reqId === 'abc-123'), 'the caller id is in the log')
  t.notOk(lines.some((l) => String(l.reqId).includes('\n')), 'the forged id is not')
  t.notOk(logs.join('').includes('s3cr3t-token'), 'no credential in any log line')
})

t.test('the gateway keeps the audit index behind the log while it serves', async (t) => {
  const { url } = await testDatabase(t)
  const fastify = await build(t, url)
  await fastify.ready()
  await fastify.eventStore.append('token-9', 'no-stream', [{ type: 'TokenImported', data: { serial: '9' } }], {
    correlationId: 'c', causationId: null, actor: { type: 'admin', id: 'alice' },
    requestId: null, sourceIp: null, userAgent: null, relyingApplication: null,
  })
  let rows: { stream_id: string; actor_id: string }[] = []
  for (let i = 0; i < 100 && rows.length === 0; i++) {
    rows = await fastify.db.selectFrom('audit_index').select(['stream_id', 'actor_id']).execute()
    if (rows.length === 0) await new Promise((r) => setTimeout(r, 20))
  }
  t.same(rows, [{ stream_id: 'token-9', actor_id: 'alice' }])
})

t.test('every page has an icon: /favicon.ico answers with it, and pages link it', async (t) => {
  const { url } = await testDatabase(t)
  const fastify = await build(t, url)
  const icon = await fastify.inject('/favicon.ico')
  t.equal(icon.statusCode, 200)
  t.match(icon.headers['content-type'], /^image\/svg\+xml/)
  t.match(icon.body, /^<svg /)
  const login = await fastify.inject('/login')
  t.match(login.body, /<link rel="icon" href="\/assets\/favicon.svg" type="image\/svg\+xml">/)
  t.equal((await fastify.inject('/assets/favicon.svg')).statusCode, 200)
})
