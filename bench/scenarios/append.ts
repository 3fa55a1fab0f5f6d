// append: N concurrent writers (N = BENCH_CONCURRENCY, pool of N connections), each appending ONE event
// per call to a stream of its own with the exact expected version, durable commits
// (synchronous_commit as the server has it, on by default). Measures appends/s and per-append latency.
import { sql } from 'kysely'
import { performance } from 'node:perf_hooks'
import { benchMetadata, otpVerified } from '../lib/fixtures.js'
import { percentile, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

interface WalStats {
  syncs: number
  bytes: number
}

/**
 * Cluster-wide WAL counters, or null: other databases' writes count too. PostgreSQL 14-17 count WAL
 * syncs in pg_stat_wal; 18 moved them to pg_stat_io.
 */
async function walStats(ctx: BenchContext): Promise<WalStats | null> {
  const queries = [
    sql<{ syncs: string; bytes: string }>`select wal_sync as syncs, wal_bytes as bytes from pg_stat_wal`,
    sql<{ syncs: string; bytes: string }>`
      select coalesce(sum(fsyncs), 0) as syncs, (select wal_bytes from pg_stat_wal) as bytes
      from pg_stat_io where object = 'wal'`,
  ]
  for (const query of queries) {
    try {
      const r = await query.execute(ctx.db)
      return { syncs: Number(r.rows[0]!.syncs), bytes: Number(r.rows[0]!.bytes) }
    } catch {
      // Not this server's version: try the next form.
    }
  }
  return null
}

/** Opens every connection of the pool before timing: N overlapping queries need N connections. */
async function warmPool(ctx: BenchContext): Promise<void> {
  const n = ctx.options.concurrency
  await Promise.all(Array.from({ length: n }, () => sql`select pg_sleep(0.05)`.execute(ctx.db)))
}

export const append: Scenario = {
  name: 'append',
  description: 'concurrent writers, one event per append, each to its own stream, durable commit',
  target: { opsPerSec: 5000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const { concurrency, appendSeconds } = ctx.options
    const settings = await sql<{ name: string; setting: string }>`
      select name, setting from pg_settings
      where name in ('synchronous_commit', 'fsync', 'commit_delay', 'wal_sync_method')`.execute(ctx.db)
    const setting = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]))
    const notes: string[] = []
    if (setting.synchronous_commit === 'off' || setting.fsync === 'off') {
      notes.push(`server has synchronous_commit=${setting.synchronous_commit}, fsync=${setting.fsync}: commits are not durable, figures flatter`)
    }

    await warmPool(ctx)
    ctx.log(`append: ${concurrency} writers for ${appendSeconds}s`)

    const wal0 = await walStats(ctx)
    const latencies = new Samples()
    let errors = 0
    let firstError: string | null = null
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    const deadline = start + appendSeconds * 1000

    async function writer(w: number): Promise<void> {
      const streamId = `bench-append-${ctx.runId}-${w}`
      const metadata = benchMetadata(`bench-${w}`)
      let version = 0
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          const result = await ctx.store.append(streamId, version === 0 ? 'no-stream' : version,
            [otpVerified(w, version + 1)], metadata)
          latencies.push(performance.now() - t0)
          version = result.nextVersion
        } catch (error) {
          errors++
          firstError ??= (error as Error).message
          // A writer that lost track of its version cannot go on; the scenario fails on errors anyway.
          return
        }
      }
    }

    await Promise.all(Array.from({ length: concurrency }, (_, w) => writer(w)))
    const seconds = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpuStart)
    const cpuSeconds = (cpu.user + cpu.system) / 1e6
    const sorted = latencies.sorted()
    const wal1 = await walStats(ctx)
    const wal: Record<string, number> = {}
    if (wal0 && wal1) {
      const syncs = wal1.syncs - wal0.syncs
      wal.walSyncs = syncs
      wal.appendsPerWalSync = syncs > 0 ? round(latencies.length / syncs, 1) : 0
      wal.walBytesPerAppend = latencies.length > 0 ? Math.round((wal1.bytes - wal0.bytes) / latencies.length) : 0
    }
    if (firstError) notes.push(`first error: ${firstError}`)

    return {
      unit: 'appends',
      operations: latencies.length,
      seconds,
      latencyMs: {
        p50: round(percentile(sorted, 50), 2),
        p99: round(percentile(sorted, 99), 2),
        max: round(percentile(sorted, 100), 2),
      },
      checks: [{ name: 'no errors', pass: errors === 0, detail: `${errors} failed appends` }],
      details: {
        writers: concurrency,
        poolSize: concurrency,
        errors,
        // Node's share of the machine while appending, and its cost per append.
        nodeCpuSeconds: round(cpuSeconds, 2),
        nodeCpuUsPerAppend: latencies.length > 0 ? round((cpuSeconds * 1e6) / latencies.length, 1) : 0,
        synchronousCommit: setting.synchronous_commit ?? 'unknown',
        fsync: setting.fsync ?? 'unknown',
        commitDelay: setting.commit_delay ?? 'unknown',
        ...wal,
      },
      notes,
    }
  },
}
