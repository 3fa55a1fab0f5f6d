// The log that replay and export read: topped up to BENCH_REPLAY_EVENTS events with bulk INSERT ... SELECT
// (untimed; the table's trigger still checks versions and chains hashes), whichever scenario runs first.
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { benchMetadata, EVENT_TYPE, otpVerifiedDataSql } from './fixtures.js'
import { round } from './stats.js'
import type { BenchContext } from './types.js'

const EVENTS_PER_STREAM = 1_000
const LOAD_CHUNK = 100_000

export async function countEvents(ctx: BenchContext): Promise<number> {
  const r = await sql<{ n: string }>`select count(*) as n from events`.execute(ctx.db)
  return Number(r.rows[0]!.n)
}

/** Appends `count` events, EVENTS_PER_STREAM per stream, versions 1..n, in transactions of LOAD_CHUNK rows. */
async function load(ctx: BenchContext, scenario: string, count: number): Promise<void> {
  const metadata = JSON.stringify(benchMetadata('bench-replay'))
  const prefix = `bench-replay-${ctx.runId}-`
  // Row g (0-based) is version g % EVENTS_PER_STREAM + 1 of stream g / EVENTS_PER_STREAM; generate_series
  // yields g in order, so each stream's versions arrive in order and the trigger finds each predecessor.
  const stream = `(g / ${EVENTS_PER_STREAM})::text`
  const data = sql.raw(otpVerifiedDataSql(stream, 'g'))
  const started = performance.now()
  for (let from = 0; from < count; from += LOAD_CHUNK) {
    const to = Math.min(count, from + LOAD_CHUNK) - 1
    await sql`
      insert into events (stream_id, stream_version, type, data, metadata)
      select ${prefix} || ${sql.raw(stream)}, (g % ${sql.lit(EVENTS_PER_STREAM)}) + 1, ${EVENT_TYPE},
             ${data}, ${metadata}::jsonb
      from generate_series(${from}::bigint, ${to}::bigint) as g`.execute(ctx.db)
    ctx.log(`${scenario}: loaded ${to + 1}/${count} events (${round((performance.now() - started) / 1000)}s)`)
  }
  // Set hint bits and the visibility map now, so the timed read does not write them; fresh statistics.
  await sql`vacuum (analyze) events`.execute(ctx.db)
}

/** Tops the log up to ctx.options.replayEvents events; what the run already wrote counts. */
export async function topUpLog(ctx: BenchContext, scenario: string): Promise<{ loaded: number; seconds: number }> {
  const existing = await countEvents(ctx)
  const loaded = Math.max(0, ctx.options.replayEvents - existing)
  const started = performance.now()
  if (loaded > 0) {
    ctx.log(`${scenario}: loading ${loaded} events (untimed; ${existing} already in the log)`)
    await load(ctx, scenario, loaded)
  }
  return { loaded, seconds: (performance.now() - started) / 1000 }
}
