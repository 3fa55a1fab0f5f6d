// replay: reads the whole log through store.readAllPages(START, 5000), as a projection rebuild or an
// audit replay does. The log is first topped up to BENCH_REPLAY_EVENTS events with a bulk INSERT ... SELECT
// (untimed; the table's trigger still checks versions and chains hashes). Measures events/s and how much
// the process's memory grows while reading: paging must keep it flat.
import { sql } from 'kysely'
import { performance } from 'node:perf_hooks'
import { START } from '../../src/event-store/types.js'
import { countEvents, topUpLog } from '../lib/log.js'
import { forceGc, MB, round } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const PAGE_SIZE = 5_000
/** Flat memory: what the reader still holds after a GC, and the resident high-water mark while reading. */
const MAX_RETAINED_HEAP_MB = 16
const MAX_PEAK_RSS_GROWTH_MB = 256

export const replay: Scenario = {
  name: 'replay',
  description: `reads the whole log with readAllPages(START, ${PAGE_SIZE}); memory must stay flat`,
  target: { opsPerSec: 200_000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const { loaded: toLoad, seconds: loadSeconds } = await topUpLog(ctx, 'replay')
    const total = await countEvents(ctx)
    const sizes = await sql<{ table: string; total: string }>`
      select pg_size_pretty(pg_table_size('events')) as table,
             pg_size_pretty(pg_total_relation_size('events')) as total`.execute(ctx.db)
    const avg = await sql<{ data: string; metadata: string }>`
      select avg(pg_column_size(data))::int as data, avg(pg_column_size(metadata))::int as metadata
      from (select data, metadata from events limit 10000) s`.execute(ctx.db)

    ctx.log(`replay: reading ${total} events`)
    const gcAvailable = forceGc()
    const base = process.memoryUsage()
    let peakRss = base.rss
    let peakHeap = base.heapUsed
    let events = 0
    let pages = 0
    let lastPosition = 0

    const cpuStart = process.cpuUsage()
    const start = performance.now()
    for await (const page of ctx.store.readAllPages(START, PAGE_SIZE)) {
      events += page.length
      pages++
      lastPosition = page[page.length - 1]!.position
      const m = process.memoryUsage()
      if (m.rss > peakRss) peakRss = m.rss
      if (m.heapUsed > peakHeap) peakHeap = m.heapUsed
    }
    const seconds = (performance.now() - start) / 1000
    const cpu = process.cpuUsage(cpuStart)
    const readCpuSeconds = (cpu.user + cpu.system) / 1e6

    forceGc()
    const after = process.memoryUsage()
    const retainedHeapMb = (after.heapUsed - base.heapUsed) / MB
    const peakRssGrowthMb = (peakRss - base.rss) / MB
    const peakHeapGrowthMb = (peakHeap - base.heapUsed) / MB
    const notes: string[] = []
    if (!gcAvailable) notes.push('no forced GC available: the retained-heap figure includes garbage')
    if (events < total) {
      notes.push(`read ${events} of ${total}: readAll stops below the oldest running transaction; is another session holding one open?`)
    }

    return {
      unit: 'events',
      operations: events,
      seconds,
      checks: [
        { name: 'read every event', pass: events === total, detail: `${events} of ${total}` },
        {
          name: 'flat memory',
          pass: retainedHeapMb < MAX_RETAINED_HEAP_MB && peakRssGrowthMb < MAX_PEAK_RSS_GROWTH_MB,
          detail: `retained heap ${round(retainedHeapMb)} MB (< ${MAX_RETAINED_HEAP_MB}), ` +
            `peak RSS growth ${round(peakRssGrowthMb)} MB (< ${MAX_PEAK_RSS_GROWTH_MB}), peak heap growth ${round(peakHeapGrowthMb)} MB`,
        },
      ],
      details: {
        pageSize: PAGE_SIZE,
        pages,
        lastPosition,
        // Node's CPU while reading: near `seconds` means the client's decoding is the limit.
        readNodeCpuSeconds: round(readCpuSeconds, 2),
        nodeCpuUsPerEvent: events > 0 ? round((readCpuSeconds * 1e6) / events, 2) : 0,
        loadedEvents: toLoad,
        loadSeconds: round(loadSeconds, 1),
        tableSize: sizes.rows[0]!.table,
        tableSizeWithIndexes: sizes.rows[0]!.total,
        avgDataBytes: Number(avg.rows[0]!.data),
        avgMetadataBytes: Number(avg.rows[0]!.metadata),
        baseRssMb: round(base.rss / MB),
        baseHeapUsedMb: round(base.heapUsed / MB),
        peakRssGrowthMb: round(peakRssGrowthMb),
        peakHeapGrowthMb: round(peakHeapGrowthMb),
        retainedHeapMb: round(retainedHeapMb),
      },
      notes,
    }
  },
}
