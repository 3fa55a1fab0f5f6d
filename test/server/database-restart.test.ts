// PostgreSQL stopped and started again under load, on a server of this test's own (an embedded PostgreSQL
// in a temporary directory, so no other test's database goes down): while it is down every request answers
// 503 with a message a person understands, at once (no hang past the pool's connect timeout); when it is
// back the same gateway, not restarted, serves again; every change it acknowledged before is in the log,
// once, and every hash chain verifies.
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { createDatabase, CONNECT_TIMEOUT_MS } from '../../src/db/database.js'
import { startEmbedded } from '../../src/db/embedded-postgres.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { PostgresEventStore } from '../../src/event-store/postgres.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { seedOf } from '../helpers/seeds.js'

const run = promisify(execFile)
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-pg-restart-'))
await fs.chmod(dir, 0o711)
const embedded = await startEmbedded(dir, { database: 'tessera' })
const { pg_ctl: pgCtl } = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { pg_ctl: string }
const asPostgres = process.getuid?.() === 0
  ? { uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) } : {}
const pgDir = embedded.info.pgDir
const stopServer = () => run(pgCtl, ['stop', '-w', '-m', 'fast', '-D', pgDir], asPostgres)
const startServer = () => run(pgCtl, ['start', '-w', '-t', '60', '-D', pgDir, '-l', path.join(pgDir, 'server.log'),
  '-o', `-p ${embedded.info.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300`], { ...asPostgres, env: { ...process.env, LC_ALL: 'C' } })
t.teardown(async () => {
  await stopServer().catch(() => {})
  await fs.rm(dir, { recursive: true, force: true })
})

const db = createDatabase(embedded.url, { max: 10 })
await migrateToLatest(db)
const store = new PostgresEventStore(db)
t.teardown(async () => {
  store.close()
  await db.destroy().catch(() => {})
})
const { app } = await testApp(t, {}, { database: { url: embedded.url, name: 'tessera', db, store } })
const SERIALS = Array.from({ length: 16 }, (_, i) => `PGR-${i}`)
await importEntra(app, SERIALS.map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())

interface Answer { status: number; ms: number; serial: string; version?: number; message?: string }
const answers: Answer[] = []
let running = true
/** One client: disables and enables its tokens, one event per acknowledged request. */
async function client(serials: string[]) {
  for (let i = 0; running; i++) {
    const serial = serials[i % serials.length]!
    const operation = Math.floor(i / serials.length) % 2 === 0 ? 'disable' : 'enable'
    const started = performance.now()
    const res = await app.inject({ method: 'POST', url: `/admin/api/tokens/${serial}/${operation}`, headers: { authorization: `Bearer ${key}` } })
    const body = res.json() as { version?: number; token?: { version: number }; message?: string }
    answers.push({ status: res.statusCode, ms: performance.now() - started, serial, version: body.token?.version ?? body.version, message: body.message })
    if (res.statusCode >= 500) await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('PostgreSQL restarted under load: 503 at once while it is down, served again after, nothing acknowledged lost', async (t) => {
  const clients = [0, 1, 2, 3].map((n) => client(SERIALS.slice(n * 4, n * 4 + 4)))
  await new Promise((r) => setTimeout(r, 1500))
  const beforeStop = answers.length
  await stopServer()
  const stoppedAt = answers.length
  await new Promise((r) => setTimeout(r, 3000))
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, '/readyz says the database is unreachable')
  t.match(ready.json(), { checks: { database: 'unreachable' } })
  const page = await app.inject({ method: 'GET', url: '/login', headers: { accept: 'text/html' } })
  const down = answers.slice(stoppedAt)
  await startServer()
  await new Promise((r) => setTimeout(r, 2500))
  running = false
  await Promise.all(clients)

  t.ok(beforeStop > 20, `requests were served before the stop (${beforeStop})`)
  t.ok(down.length > 0, `requests came in while it was down (${down.length})`)
  t.same([...new Set(down.map((a) => a.status))], [503], 'every one answered 503')
  t.match(down[0]!.message, /We can't reach our database right now\. Try again in a moment\./)
  t.ok(Math.max(...down.map((a) => a.ms)) < CONNECT_TIMEOUT_MS + 1000, `none waited past the connect timeout (slowest ${Math.round(Math.max(...down.map((a) => a.ms)))} ms)`)
  t.ok([200, 503].includes(page.statusCode), `a page request got ${page.statusCode}, not a 500`)
  const after = answers.slice(stoppedAt + down.length)
  t.ok(after.some((a) => a.status === 200), 'served again without restarting the gateway')
  t.same(answers.filter((a) => a.status >= 500 && a.status !== 503), [], 'no 500 at any moment')

  // Every acknowledged change is in the log, once: each 200 named the token's new version.
  const acknowledged = answers.filter((a) => a.status === 200)
  const rows = await sql<{ stream_id: string; stream_version: number }>`select stream_id, stream_version from events where stream_id like 'token-PGR-%'`.execute(db)
  const written = new Set(rows.rows.map((r) => `${r.stream_id}@${r.stream_version}`))
  const missing = acknowledged.filter((a) => !written.has(`token-${a.serial}@${a.version}`))
  t.same(missing, [], `all ${acknowledged.length} acknowledged changes are in the log`)
  t.equal(written.size, rows.rows.length, 'none doubled')
  t.same((await verifyChains(db)).breaks, [], 'every hash chain verifies')
})
