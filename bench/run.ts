// The benchmark harness: `npm run bench [-- scenario...]`.
// Runs on DATABASE_URL's server, or on an embedded PostgreSQL in .tessera-bench (stopped afterwards if
// started here), in a fresh database tessera_bench_<random> that is dropped at the end.
// Prints a table and writes bench/results/latest.json. See bench/README.md.
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDatabase } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { PostgresEventStore } from '../src/event-store/postgres.js'
import { table, type ReportRow } from './lib/report.js'
import { benchServer, createBenchDatabase, dropBenchDatabase, serverInfo, type BenchServer } from './lib/server.js'
import { loadavg, round } from './lib/stats.js'
import type { BenchContext, BenchOptions, Scenario } from './lib/types.js'
import { append } from './scenarios/append.js'
import { exportScenario, timelineScenario } from './scenarios/audit.js'
import { flows, flowsBare, flowsSso, flowsStepup } from './scenarios/flows.js'
import { importScenario } from './scenarios/import.js'
import { importPskc } from './scenarios/import-pskc.js'
import { replay } from './scenarios/replay.js'
import { verify } from './scenarios/verify.js'
import { otpDelivery } from './scenarios/otp-delivery.js'
import { remote } from './scenarios/remote.js'
import { soak } from './scenarios/soak.js'

/** Every scenario, in the order a full run takes them. Add new ones here. */
const SCENARIOS: readonly Scenario[] = [append, replay, exportScenario, timelineScenario, importScenario, importPskc, verify, flows, flowsSso, flowsStepup, flowsBare, otpDelivery, remote, soak]

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT_DIR = path.dirname(BENCH_DIR)
const RESULTS_FILE = path.join(BENCH_DIR, 'results', 'latest.json')

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a whole number > 0, not ${JSON.stringify(raw)}`)
  return n
}

function oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  if (!(values as readonly string[]).includes(raw)) throw new Error(`${name} must be one of ${values.join(', ')}, not ${JSON.stringify(raw)}`)
  return raw as T
}

function selectScenarios(args: readonly string[]): Scenario[] {
  const names = args.filter((a) => a !== '--')
  if (names.length === 0) return SCENARIOS.filter((s) => !s.optIn)
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n))
  if (unknown.length > 0) {
    throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  }
  // In registry order, each once.
  return SCENARIOS.filter((s) => names.includes(s.name))
}

interface ScenarioRecord {
  name: string
  description: string
  target: { opsPerSec: number }
  unit?: string
  operations?: number
  seconds?: number
  opsPerSec?: number
  latencyMs?: { p50: number; p99: number; max: number }
  checks?: { name: string; pass: boolean; detail: string }[]
  details?: Record<string, number | string | boolean>
  notes?: string[]
  pass: boolean
  error?: string
  /** CPU this Node process used during the scenario (user + system), all of it, setup included. */
  nodeCpuSeconds?: number
  loadavgStart: number[]
  loadavgEnd: number[]
}

async function main(): Promise<number> {
  const scenarios = selectScenarios(process.argv.slice(2))
  const options: BenchOptions = {
    appendSeconds: positiveInt('BENCH_APPEND_SECONDS', 10),
    replayEvents: positiveInt('BENCH_REPLAY_EVENTS', 1_000_000),
    concurrency: positiveInt('BENCH_CONCURRENCY', 64),
    importRows: positiveInt('BENCH_IMPORT_ROWS', 100_000),
    verifySeconds: positiveInt('BENCH_VERIFY_SECONDS', 10),
    verifyHistoryEvents: positiveInt('BENCH_VERIFY_HISTORY_EVENTS', 100_000),
    verifyHistoryRuns: positiveInt('BENCH_VERIFY_HISTORY_RUNS', 2_000),
    flowSeconds: positiveInt('BENCH_FLOW_SECONDS', 10),
    flowConcurrency: positiveInt('BENCH_FLOW_CONCURRENCY', 16),
    flowAddresses: oneOf('BENCH_FLOW_ADDRESSES', ['per-flow', 'single'] as const, 'per-flow'),
  }
  const startedAt = new Date()
  const loadStart = loadavg()
  log(`scenarios: ${scenarios.map((s) => s.name).join(', ')}; ${JSON.stringify(options)}; loadavg ${loadStart.join(' ')}`)

  let server: BenchServer | null = null
  let dbName: string | null = null
  let cleanup: (() => Promise<void>) | null = null
  let cleaning: Promise<void> | null = null
  const runCleanup = () => (cleaning ??= (cleanup ?? (async () => {}))())
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`)
    runCleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const records: ScenarioRecord[] = []
  let info: Record<string, string> = {}
  try {
    server = await benchServer(ROOT_DIR, log)
    const srv = server
    info = await serverInfo(srv.adminUrl)
    const runId = randomBytes(4).toString('hex')
    const name = `tessera_bench_${runId}`
    const url = await createBenchDatabase(srv.adminUrl, name)
    dbName = name
    const db = createDatabase(url, { max: options.concurrency, applicationName: 'tessera-bench' })
    const store = new PostgresEventStore(db)
    cleanup = async () => {
      store.close()
      await db.destroy().catch(() => {})
      await dropBenchDatabase(srv.adminUrl, name).catch((e: Error) => log(`could not drop ${name}: ${e.message}`))
      await srv.stop()
    }
    log(`database ${name} on ${srv.embedded ? 'the embedded PostgreSQL' : 'DATABASE_URL'} (PostgreSQL ${info.server_version})`)
    await migrateToLatest(db)

    const ctx: BenchContext = { url, db, store, options, runId, log }
    for (const scenario of scenarios) {
      const record: ScenarioRecord = {
        name: scenario.name,
        description: scenario.description,
        target: scenario.target,
        pass: false,
        loadavgStart: loadavg(),
        loadavgEnd: [],
      }
      const cpuStart = process.cpuUsage()
      try {
        const result = await scenario.run(ctx)
        const opsPerSec = result.seconds > 0 ? result.operations / result.seconds : 0
        const checksPass = (result.checks ?? []).every((c) => c.pass)
        Object.assign(record, {
          unit: result.unit,
          operations: result.operations,
          seconds: round(result.seconds, 3),
          opsPerSec: round(opsPerSec, 0),
          latencyMs: result.latencyMs,
          checks: result.checks,
          details: result.details,
          notes: result.notes,
          pass: opsPerSec >= scenario.target.opsPerSec && checksPass,
        })
      } catch (error) {
        record.error = (error as Error).stack ?? String(error)
        log(`${scenario.name} failed: ${(error as Error).message}`)
      }
      const cpu = process.cpuUsage(cpuStart)
      record.nodeCpuSeconds = round((cpu.user + cpu.system) / 1e6, 2)
      record.loadavgEnd = loadavg()
      records.push(record)
      log(`${scenario.name}: done, loadavg ${record.loadavgEnd.join(' ')}`)
    }
  } finally {
    await runCleanup()
    if (dbName) log(`dropped ${dbName}`)
  }

  const loadEnd = loadavg()
  const rows: ReportRow[] = records.map((r) => ({
    scenario: r.name,
    unit: r.unit ?? '',
    operations: r.operations ?? 0,
    seconds: r.seconds ?? 0,
    opsPerSec: r.opsPerSec ?? 0,
    p50Ms: r.latencyMs?.p50,
    p99Ms: r.latencyMs?.p99,
    targetOpsPerSec: r.target.opsPerSec,
    pass: r.pass,
    lines: [
      ...(r.error ? [`ERROR ${r.error.split('\n')[0]}`] : []),
      ...(r.checks ?? []).map((c) => `${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
      ...(r.details ? [Object.entries(r.details).map(([k, v]) => `${k}=${v}`).join(', ')] : []),
      ...(r.notes ?? []).map((n) => `note: ${n}`),
      `loadavg ${r.loadavgStart.join(' ')} -> ${r.loadavgEnd.join(' ')}, node CPU ${r.nodeCpuSeconds ?? '?'}s`,
    ],
  }))
  const cpus = os.cpus()
  console.log('')
  console.log(table(rows))
  console.log('')
  console.log(`node ${process.version}, ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ` +
    `PostgreSQL ${info.server_version ?? '?'}, loadavg ${loadStart.join(' ')} -> ${loadEnd.join(' ')}`)

  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? null,
    totalMemoryMb: Math.round(os.totalmem() / 1024 / 1024),
    loadavgStart: loadStart,
    loadavgEnd: loadEnd,
    server: { embedded: server?.embedded ?? null, ...info },
    options,
    scenarios: records,
  }
  await fs.mkdir(path.dirname(RESULTS_FILE), { recursive: true })
  await fs.writeFile(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`)
  if (loadStart[0] > cpus.length / 2) {
    console.log(`note: loadavg ${loadStart[0]} on ${cpus.length} CPUs at the start: other work was running, figures are noisy`)
  }
  console.log(`results: ${path.relative(process.cwd(), RESULTS_FILE)}`)
  // Missing a target is a finding, not a crash: only a scenario that could not run fails the command.
  return records.some((r) => r.error) ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log((error as Error).stack ?? String(error))
    process.exit(1)
  },
)
