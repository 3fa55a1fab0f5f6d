// export: the whole log (topped up to BENCH_REPLAY_EVENTS events, as for replay) as JSON lines through the
// auditors' export (src/audit/export.ts), into a sink that counts bytes; memory must stay flat. timeline: one token with 100,000 events, its timeline paged
// 100 events at a time through the audit index (src/audit/timeline.ts); each page must take < 50 ms.
import { performance } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import { sql } from 'kysely'
import { exportEventsTo } from '../../src/audit/export.js'
import { timeline } from '../../src/audit/timeline.js'
import { benchMetadata } from '../lib/fixtures.js'
import { countEvents, topUpLog } from '../lib/log.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { percentile, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const TIMELINE_EVENTS = Number(process.env.BENCH_TIMELINE_EVENTS ?? 100_000)
const PAGE = 100

export const exportScenario: Scenario = {
  name: 'export',
  description: 'the whole log exported as JSON lines (position, hash, previous hash, hashed bytes), memory flat',
  target: { opsPerSec: 200_000 },
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const { loaded, seconds: loadSeconds } = await topUpLog(ctx, 'export')
    const total = await countEvents(ctx)
    ctx.log(`export: exporting ${total} events`)
    const baseRss = process.memoryUsage.rss()
    let peakRss = baseRss
    let bytes = 0
    let lines = 0
    let sampledAt = 0
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
        // Reading RSS costs a /proc read: once per 4 MB written (every write of a paged export).
        if (bytes - sampledAt >= 4 << 20) {
          sampledAt = bytes
          peakRss = Math.max(peakRss, process.memoryUsage.rss())
        }
        callback()
      },
    })
    // The export thread starts with the first export of a process and serves the later ones: started
    // here, untimed, by an export of a stream that does not exist, as a running gateway's already is.
    await exportEventsTo(ctx.db, { streamId: 'bench-no-such-stream' }, 'jsonl', new Writable({ write: (_c, _e, callback) => callback() }))
    // The export may read on a connection of its own that closes when it ends: the backends' CPU is
    // sampled every 100 ms while it runs (the last 100 ms of a backend that ends can be missed).
    const server0 = await backendCpu(ctx.db)
    const serverSeen = new Map(server0 ?? [])
    const sampler = setInterval(() => {
      backendCpu(ctx.db).then((now) => {
        for (const [pid, ticks] of now ?? []) serverSeen.set(pid, Math.max(ticks, serverSeen.get(pid) ?? 0))
      }, () => {})
    }, 100)
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    try {
      await exportEventsTo(ctx.db, {}, 'jsonl', sink)
    } finally {
      clearInterval(sampler)
    }
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    peakRss = Math.max(peakRss, process.memoryUsage.rss())
    for (const [pid, ticks] of (await backendCpu(ctx.db)) ?? []) serverSeen.set(pid, Math.max(ticks, serverSeen.get(pid) ?? 0))
    const serverCpuSeconds = backendCpuSeconds(server0, serverSeen.size > 0 ? serverSeen : null)
    const nodeCpuSeconds = (cpu.user + cpu.system) / 1e6
    const growth = (peakRss - baseRss) / 1024 / 1024
    return {
      unit: 'events',
      operations: lines,
      seconds,
      checks: [
        { name: 'every event', pass: lines === total, detail: `${lines} of ${total}` },
        { name: 'flat memory', pass: growth < 256, detail: `peak RSS growth ${round(growth)} MB (< 256)` },
      ],
      details: {
        megabytes: round(bytes / 1024 / 1024),
        peakRssGrowthMb: round(growth),
        // Node's and the database's CPU per event: on 2 cores, whichever is near `seconds` is the limit.
        exportNodeCpuSeconds: round(nodeCpuSeconds, 2),
        nodeCpuUsPerEvent: lines > 0 ? round((nodeCpuSeconds * 1e6) / lines, 2) : 0,
        ...(serverCpuSeconds === null ? {} : {
          serverBackendCpuSeconds: round(serverCpuSeconds, 2),
          serverBackendCpuUsPerEvent: lines > 0 ? round((serverCpuSeconds * 1e6) / lines, 2) : 0,
        }),
        loadedEvents: loaded,
        loadSeconds: round(loadSeconds, 1),
      },
    }
  },
}

export const timelineScenario: Scenario = {
  name: 'timeline',
  description: `one token with ${TIMELINE_EVENTS} events: its audit timeline paged ${PAGE} at a time; a page must take < 50 ms`,
  target: { opsPerSec: 20 },
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const streamId = `token-bench-${ctx.runId}`
    const metadata = JSON.stringify(benchMetadata('bench-timeline'))
    ctx.log(`timeline: loading ${TIMELINE_EVENTS} events on ${streamId} (untimed)`)
    for (let from = 0; from < TIMELINE_EVENTS; from += 50_000) {
      const to = Math.min(TIMELINE_EVENTS, from + 50_000) - 1
      await sql`
        insert into events (stream_id, stream_version, type, data, metadata)
        select ${streamId}, g + 1, 'OtpRejected', jsonb_build_object('serial', ${`bench-${ctx.runId}`}::text, 'userId', 'bench-user', 'reason', 'wrong'), ${metadata}::jsonb
        from generate_series(${from}::int, ${to}::int) as g`.execute(ctx.db)
    }
    // The audit index is a catch-up projection; its rows for this stream are set up directly here.
    await sql`
      insert into audit_index (position, tx_id, stream_id, stream_version, type, actor_type, actor_id, correlation_id, user_id, relying_application, recorded_at)
      select position, tx_id, stream_id, stream_version, type, metadata->'actor'->>'type', metadata->'actor'->>'id', metadata->>'correlationId',
             data->>'userId', null, recorded_at
      from events where stream_id = ${streamId}
      on conflict do nothing`.execute(ctx.db)
    await sql`analyze audit_index`.execute(ctx.db)

    const latencies = new Samples()
    let after = 0
    let pages = 0
    let events = 0
    const started = performance.now()
    for (;;) {
      const t0 = performance.now()
      const page = await timeline(ctx.db, { streamId }, { after, limit: PAGE })
      latencies.push(performance.now() - t0)
      pages++
      events += page.entries.length
      if (!page.next) break
      after = page.next
    }
    const seconds = (performance.now() - started) / 1000
    const sorted = latencies.sorted()
    const p99 = percentile(sorted, 99)
    return {
      unit: 'pages',
      operations: pages,
      seconds,
      latencyMs: { p50: round(percentile(sorted, 50)), p99: round(p99), max: round(sorted[sorted.length - 1] ?? NaN) },
      checks: [
        { name: 'every event', pass: events === TIMELINE_EVENTS, detail: `${events} of ${TIMELINE_EVENTS}` },
        { name: 'page under 50 ms', pass: p99 < 50, detail: `p99 ${round(p99)} ms` },
      ],
    }
  },
}
