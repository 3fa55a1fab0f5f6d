// The contract between bench/run.ts and a scenario. A scenario gets a migrated database of its own run
// (shared with the other scenarios of the run, so the log only grows) and returns its figures; the runner
// times nothing itself, prints the table and writes bench/results/latest.json.
import type { PostgresEventStore } from '../../src/event-store/postgres.js'
import type { Db } from '../../src/read-models/database.js'

export interface BenchOptions {
  /** BENCH_APPEND_SECONDS: how long the append scenario writes. */
  appendSeconds: number
  /** BENCH_REPLAY_EVENTS: how many events the log holds when the replay scenario reads it. */
  replayEvents: number
  /** BENCH_CONCURRENCY: concurrent writers (append) and verifiers (verify), and the size of the shared pg pool. */
  concurrency: number
  /** BENCH_IMPORT_ROWS: Entra CSV rows the import scenario streams through the parser and import command. */
  importRows: number
  /** BENCH_VERIFY_SECONDS: how long the verify scenario's concurrent phase runs. */
  verifySeconds: number
  /** BENCH_VERIFY_HISTORY_EVENTS: past events on the token of the verify scenario's history phase. */
  verifyHistoryEvents: number
  /** BENCH_VERIFY_HISTORY_RUNS: sequential verifications on the history token, and as many on a fresh one. */
  verifyHistoryRuns: number
  /** BENCH_FLOW_SECONDS: how long the flows scenario runs. */
  flowSeconds: number
  /** BENCH_FLOW_CONCURRENCY: concurrent flow loops (browsers) in the flows scenario. */
  flowConcurrency: number
  /**
   * BENCH_FLOW_ADDRESSES: 'per-flow' (each flow's browser connects from its own loopback address, as distinct
   * clients do) or 'single' (every flow from 127.0.0.1, so the per-address rate limits apply to all of them).
   */
  flowAddresses: 'per-flow' | 'single'
}

export interface BenchContext {
  /** The bench database (tessera_bench_<random>), migrated. */
  url: string
  /** Pool of `options.concurrency` connections to it. */
  db: Db
  /** Event store over `db`, with the production defaults. */
  store: PostgresEventStore
  options: BenchOptions
  /** A random id for this run, for stream ids. */
  runId: string
  log(message: string): void
}

/** A condition besides throughput that the scenario must meet (e.g. flat memory). */
export interface Check {
  name: string
  pass: boolean
  detail: string
}

export interface ScenarioResult {
  /** What one operation is: 'appends', 'events'. */
  unit: string
  operations: number
  /** Timed wall-clock seconds. */
  seconds: number
  /** Latency of one operation, where the scenario measures it. */
  latencyMs?: { p50: number; p99: number; max: number }
  checks?: Check[]
  /** Anything else worth keeping in latest.json (numbers or short strings). */
  details?: Record<string, number | string | boolean>
  notes?: string[]
}

export interface Scenario {
  name: string
  description: string
  target: { opsPerSec: number }
  /** Runs only when named (`npm run bench -- soak`), never in a full run: it takes minutes. */
  optIn?: boolean
  run(ctx: BenchContext): Promise<ScenarioResult>
}
