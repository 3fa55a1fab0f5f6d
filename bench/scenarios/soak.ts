// soak: verifyCode at a steady rate for a long time (10 minutes by default), to see that nothing builds up:
// no error, the rate held, latency steady, and the process's memory flat. Opt-in: a full run leaves it out.
//
// The rate is BENCH_SOAK_RATE verifications/s, or half the maximum measured first for BENCH_VERIFY_SECONDS
// as verify's phase 1 measures it (BENCH_CONCURRENCY workers, each on its own token, as fast as they go).
// The paced run is open-loop: a tick every 10 ms starts the verifications due by then, whatever the ones
// before are doing, each on the next idle token of a pool (FIFO, so no token is ever verified twice at once).
// Tokens, users and codes are prepared as verify prepares them (prepareTokens, bench/lib/otp.ts).
// Memory is sampled every BENCH_SOAK_SAMPLE_SECONDS after a full GC; flat means the heap's least-squares
// slope over the second half of the run stays under MAX_HEAP_SLOPE_MB_PER_MIN.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import type { CommandContext } from '../../src/commands/context.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { tokenStream } from '../../src/domain/token/events.js'
import { checkHotpVectors } from '../lib/otp.js'
import { cpuSince, forceGc, latencySummary, MB, round, Samples } from '../lib/stats.js'
import type { BenchContext, Check, Scenario, ScenarioResult } from '../lib/types.js'
import { GOAL as VERIFY_GOAL, prepareTokens, verifyNext, type BenchToken } from './verify.js'

const TICK_MS = 10
/** A verification started more than this after its due time was late (five ticks: timer jitter and GC pauses are not). */
const ON_TIME_MS = 50
/** Kept up: at least this share of the due verifications started on time. */
const MIN_ON_TIME_SHARE = 0.99
/** Flat memory: the heap held after a GC grows by less than this over the second half of the run. */
const MAX_HEAP_SLOPE_MB_PER_MIN = 1
/** The token pool holds this many seconds' worth of verifications (at least twice BENCH_CONCURRENCY). */
const POOL_SECONDS = 0.5

interface SoakSettings {
  /** BENCH_SOAK_SECONDS: how long the paced run lasts. */
  seconds: number
  /** BENCH_SOAK_RATE: verifications/s; null to measure the maximum and take half. */
  rate: number | null
  /** BENCH_SOAK_SAMPLE_SECONDS: how often memory is sampled. */
  sampleSeconds: number
}

function positiveNumber(name: string, fallback: number | null, whole: boolean): number | null {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0 || (whole && !Number.isInteger(n))) {
    throw new Error(`${name} must be a ${whole ? 'whole number' : 'number'} > 0, not ${JSON.stringify(raw)}`)
  }
  return n
}

function soakSettings(): SoakSettings {
  return {
    seconds: positiveNumber('BENCH_SOAK_SECONDS', 600, true)!,
    rate: positiveNumber('BENCH_SOAK_RATE', null, false),
    sampleSeconds: positiveNumber('BENCH_SOAK_SAMPLE_SECONDS', 10, false)!,
  }
}

interface MemorySample {
  /** Seconds since the paced run started. */
  t: number
  rss: number
  heapUsed: number
  external: number
}

function sampleMemory(t: number): MemorySample {
  forceGc()
  const m = process.memoryUsage()
  return { t, rss: m.rss, heapUsed: m.heapUsed, external: m.external }
}

/** Least-squares slope of `value` over `t`, per second; NaN under two samples. */
function slope(samples: readonly MemorySample[], value: (s: MemorySample) => number): number {
  const n = samples.length
  if (n < 2) return NaN
  const meanT = samples.reduce((a, s) => a + s.t, 0) / n
  const meanV = samples.reduce((a, s) => a + value(s), 0) / n
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.t - meanT) * (value(s) - meanV)
    den += (s.t - meanT) ** 2
  }
  return den > 0 ? num / den : NaN
}

/** Samples with room for `n` made beforehand, so the soak's own bookkeeping does not grow during the run. */
function reservedSamples(n: number): Samples {
  const samples = new Samples()
  for (let i = 0; i < n; i++) samples.push(0)
  samples.length = 0
  return samples
}

/** verify's phase 1: every token verified in a loop by a worker of its own for `seconds`; verifications/s. */
async function measureMaximum(commands: CommandContext, tokens: readonly BenchToken[], seconds: number): Promise<number> {
  let done = 0
  const start = performance.now()
  const deadline = start + seconds * 1000
  await Promise.all(tokens.map(async (token) => {
    while (performance.now() < deadline) {
      await verifyNext(commands, token)
      done++
    }
  }))
  return done / ((performance.now() - start) / 1000)
}

async function otpVerifiedCount(ctx: BenchContext, tokens: readonly BenchToken[]): Promise<number> {
  const r = await sql<{ n: string }>`
    select count(*) as n from events
    where stream_id = any(${tokens.map((t) => tokenStream(t.serial))}::text[]) and type = 'OtpVerified'`.execute(ctx.db)
  return Number(r.rows[0]!.n)
}

async function eventsTableBytes(ctx: BenchContext): Promise<number> {
  const r = await sql<{ bytes: string }>`select pg_total_relation_size('events') as bytes`.execute(ctx.db)
  return Number(r.rows[0]!.bytes)
}

interface PacedRun {
  seconds: number
  due: number
  started: number
  onTime: number
  maxLatenessMs: number
  completed: number
  errors: number
  firstError: string | null
  maxInFlight: number
  /** Ticks on which a due verification found no idle token. */
  poolEmptyTicks: number
  latencies: Samples
  memory: MemorySample[]
  /** The counters at each memory sample, to see when verifications fell behind. */
  progress: { started: number; onTime: number; completed: number }[]
}

/**
 * Starts verification i at `start + i / rate`, on the tick that finds it due, on the idle token that has
 * waited longest. Starts never wait for earlier verifications to finish, only for a tick or an idle token, and
 * how late they start is counted; latency runs from the start, as verify measures it (from the due time it would
 * add up to a tick of waiting to every one). A token whose verification failed is set aside: its counter is unknown.
 */
function pacedRun(commands: CommandContext, tokens: readonly BenchToken[], rate: number, settings: SoakSettings): Promise<PacedRun> {
  const total = Math.floor(rate * settings.seconds)
  const idle = [...tokens]
  const result: PacedRun = {
    seconds: 0, due: total, started: 0, onTime: 0, maxLatenessMs: 0, completed: 0, errors: 0, firstError: null,
    maxInFlight: 0, poolEmptyTicks: 0, latencies: reservedSamples(total + 1), memory: [], progress: [],
  }
  let inFlight = 0
  return new Promise((resolve) => {
    const start = performance.now()
    const sample = (t: number) => {
      result.memory.push(sampleMemory(t))
      result.progress.push({ started: result.started, onTime: result.onTime, completed: result.completed })
    }
    sample(0)
    const sampler = setInterval(() => sample((performance.now() - start) / 1000), settings.sampleSeconds * 1000)
    const finish = () => {
      clearInterval(ticker)
      clearInterval(sampler)
      result.seconds = (performance.now() - start) / 1000
      sample(result.seconds)
      resolve(result)
    }
    const ticker = setInterval(() => {
      const now = performance.now()
      const due = Math.min(total, Math.floor(((now - start) / 1000) * rate) + 1)
      while (result.started < due && idle.length > 0) {
        const dueAt = start + (result.started * 1000) / rate
        const lateness = now - dueAt
        if (lateness <= ON_TIME_MS) result.onTime++
        if (lateness > result.maxLatenessMs) result.maxLatenessMs = lateness
        result.started++
        const token = idle.shift()!
        const t0 = performance.now()
        inFlight++
        if (inFlight > result.maxInFlight) result.maxInFlight = inFlight
        verifyNext(commands, token).then(
          () => {
            result.latencies.push(performance.now() - t0)
            result.completed++
            idle.push(token)
          },
          (error: Error) => {
            result.errors++
            result.firstError ??= `${token.serial}: ${error.name}: ${error.message}`
          },
        ).finally(() => {
          inFlight--
          if (result.started === total && inFlight === 0) finish()
        })
      }
      if (result.started < due) result.poolEmptyTicks++
      // Every token failed: nothing will ever start again.
      if (idle.length === 0 && inFlight === 0 && result.started < total) finish()
    }, TICK_MS)
  })
}

export const soak: Scenario = {
  name: 'soak',
  description: 'verifyCode at half the measured maximum (or BENCH_SOAK_RATE) for BENCH_SOAK_SECONDS: no error, the rate held, flat memory',
  // The rate is the scenario's own choice; what it judges is in the checks.
  target: { opsPerSec: 0 },
  // Ten minutes: only when asked for by name.
  optIn: true,

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    checkHotpVectors()
    const settings = soakSettings()
    const { concurrency, verifySeconds } = ctx.options
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }
    const setupStart = performance.now()

    // prepareTokens names tokens and users after the run id: a run id of the soak's own keeps them apart
    // from verify's in the same run, and its batches apart from each other.
    let tokens: BenchToken[] = []
    let measuredMax: number | null = null
    if (settings.rate === null) {
      ctx.log(`soak: importing ${concurrency} HOTP tokens, registering and activating them (untimed)`)
      tokens = await prepareTokens({ ...ctx, runId: `${ctx.runId}s0` }, commands, concurrency)
      await Promise.all(tokens.map((t) => verifyNext(commands, t)))
      ctx.log(`soak: measuring the maximum rate, ${concurrency} workers for ${verifySeconds}s`)
      measuredMax = await measureMaximum(commands, tokens, verifySeconds)
    }
    const rate = settings.rate ?? measuredMax! / 2
    if (Math.floor(rate * settings.seconds) < 1) throw new Error(`soak: ${rate}/s for ${settings.seconds}s is not one verification`)
    const poolSize = Math.max(2 * concurrency, Math.ceil(rate * POOL_SECONDS))
    if (poolSize > tokens.length) {
      ctx.log(`soak: ${poolSize - tokens.length} more tokens for a pool of ${poolSize} (untimed)`)
      // prepareTokens activates its tokens all at once: batches of the pg pool's size keep them from waiting past its timeout.
      for (let batch = 1; tokens.length < poolSize; batch++) {
        const more = await prepareTokens({ ...ctx, runId: `${ctx.runId}s${batch}` }, commands, Math.min(concurrency, poolSize - tokens.length))
        await Promise.all(more.map((t) => verifyNext(commands, t)))
        tokens = [...tokens, ...more]
      }
    }
    const setupSeconds = (performance.now() - setupStart) / 1000

    const eventsBefore = await otpVerifiedCount(ctx, tokens)
    const tableBefore = await eventsTableBytes(ctx)
    ctx.log(`soak: ${round(rate, 0)} verifications/s for ${settings.seconds}s over ${tokens.length} tokens, memory every ${settings.sampleSeconds}s`)
    const gcExposed = typeof (globalThis as { gc?: unknown }).gc === 'function'
    const gc = gcExposed ? 'expose-gc' : forceGc() ? 'flag set at run time' : 'none'
    const cpuStart = process.cpuUsage()
    const run = await pacedRun(commands, tokens, rate, settings)
    const { seconds: cpuSeconds } = cpuSince(cpuStart)
    const verifiedEvents = (await otpVerifiedCount(ctx, tokens)) - eventsBefore
    const tableGrowth = (await eventsTableBytes(ctx)) - tableBefore

    const latency = latencySummary(run.latencies)
    const memory = run.memory
    const secondHalf = memory.filter((s) => s.t >= run.seconds / 2)
    const heapSlope = (slope(secondHalf, (s) => s.heapUsed) * 60) / MB
    const rssSlope = (slope(secondHalf, (s) => s.rss) * 60) / MB
    const first = memory[0]!
    const last = memory[memory.length - 1]!
    const mb = (bytes: number) => round(bytes / MB, 1)
    const max = (value: (s: MemorySample) => number) => Math.max(...memory.map(value))
    const onTimeShare = run.due > 0 ? run.onTime / run.due : 0
    // Between one sample and the next: verifications/s, and the share of those started that were on time.
    const intervals = run.progress.slice(1).map((p, i) => {
      const before = run.progress[i]!
      const dt = memory[i + 1]!.t - memory[i]!.t
      const started = p.started - before.started
      return {
        perSec: dt > 0 ? (p.completed - before.completed) / dt : 0,
        onTimePercent: started > 0 ? (100 * (p.onTime - before.onTime)) / started : 100,
      }
    })

    const checks: Check[] = [
      {
        name: 'no error',
        pass: run.errors === 0 && run.completed === run.due && verifiedEvents === run.completed,
        detail: `${run.errors} failed, ${run.completed} of ${run.due} verified, ${verifiedEvents} OtpVerified events`,
      },
      {
        name: 'kept up with the rate',
        pass: onTimeShare >= MIN_ON_TIME_SHARE,
        detail: `${run.onTime} of ${run.due} started within ${ON_TIME_MS} ms of their due time (${round(onTimeShare * 100, 2)}%, ` +
          `>= ${MIN_ON_TIME_SHARE * 100}%); ${run.started} started in all, latest ${round(run.maxLatenessMs, 0)} ms late`,
      },
      {
        name: 'flat memory',
        pass: secondHalf.length >= 3 && heapSlope < MAX_HEAP_SLOPE_MB_PER_MIN,
        detail: secondHalf.length < 3
          ? `${secondHalf.length} memory samples in the second half, at least 3 needed: lengthen BENCH_SOAK_SECONDS or shorten BENCH_SOAK_SAMPLE_SECONDS`
          : `heap after GC ${round(heapSlope, 3)} MB/min over the second half (< ${MAX_HEAP_SLOPE_MB_PER_MIN}); ` +
            `heap ${mb(first.heapUsed)} -> ${mb(last.heapUsed)} MB (max ${mb(max((s) => s.heapUsed))}), ` +
            `rss ${mb(first.rss)} -> ${mb(last.rss)} MB (max ${mb(max((s) => s.rss))})`,
      },
    ]
    // verify has no p99 target, only a goal it prints as a note: the soak does the same.
    const notes = [
      `p99 ${latency.p99} ms at ${round(rate, 0)}/s, verify's goal is p99 <= ${VERIFY_GOAL.p99Ms} ms: ${latency.p99 <= VERIFY_GOAL.p99Ms ? 'met' : 'not met'}`,
    ]
    if (run.firstError) notes.push(`first error: ${run.firstError}`)
    if (gc === 'none') notes.push('no forced GC before the memory samples: the heap figures include garbage')

    return {
      unit: 'verifications',
      operations: run.completed,
      seconds: run.seconds,
      latencyMs: latency,
      checks,
      details: {
        rate: round(rate, 1),
        rateFrom: measuredMax === null ? 'BENCH_SOAK_RATE' : `half the maximum over ${verifySeconds}s`,
        ...(measuredMax === null ? {} : { measuredMaxPerSec: round(measuredMax, 0) }),
        workersForMaximum: concurrency,
        soakSeconds: settings.seconds,
        due: run.due,
        started: run.started,
        startedOnTime: run.onTime,
        maxStartLatenessMs: round(run.maxLatenessMs, 1),
        errors: run.errors,
        tokenPool: tokens.length,
        maxInFlight: run.maxInFlight,
        poolEmptyTicks: run.poolEmptyTicks,
        verifiedPerSecByInterval: intervals.map((i) => round(i.perSec, 0)).join(' '),
        onTimePercentByInterval: intervals.map((i) => round(i.onTimePercent, 1)).join(' '),
        memorySamples: memory.length,
        sampleSeconds: settings.sampleSeconds,
        gc,
        heapFirstMb: mb(first.heapUsed),
        heapLastMb: mb(last.heapUsed),
        heapMaxMb: mb(max((s) => s.heapUsed)),
        heapSlopeMbPerMin: round(heapSlope, 3),
        heapMbBySample: memory.map((s) => mb(s.heapUsed)).join(' '),
        rssFirstMb: mb(first.rss),
        rssLastMb: mb(last.rss),
        rssMaxMb: mb(max((s) => s.rss)),
        rssSlopeMbPerMin: round(rssSlope, 3),
        externalFirstMb: mb(first.external),
        externalLastMb: mb(last.external),
        // Expected to grow: one OtpVerified event per verification.
        eventsTableGrowthMb: mb(tableGrowth),
        nodeCpuUsPerVerification: run.completed > 0 ? round((cpuSeconds * 1e6) / run.completed, 1) : 0,
        setupSeconds: round(setupSeconds, 1),
      },
      notes,
    }
  },
}
