// verify: OTP step-up verification, the command the gateway's "Enter code" page runs: verifyCode(ctx, ...) from
// src/commands/tokens.ts (one round trip reads the token row and its sealed seed, one statement appends the
// OtpVerified event and updates the row; durable commit). No HTTP: the only HTTP routes that verify need an
// OpenID interaction or a session, CSRF token and rate limit per request (see bench/README.md).
//
// Setup (untimed): HOTP tokens imported through the privacyIDEA OATH CSV parser and importTokens, one user
// per token registered with registerUser, each token activated with its counter-0 code. Codes come from the
// bench's own RFC 4226 implementation, the next counter for each verification, so every one is a new valid code.
//
// Phase 1, timed for BENCH_VERIFY_SECONDS: BENCH_CONCURRENCY workers, each verifying its own token in a loop.
// Phase 2, history: a token with BENCH_VERIFY_HISTORY_EVENTS past events (bulk-loaded OtpRejected events) and
// a fresh token, BENCH_VERIFY_HISTORY_RUNS sequential verifications each, interleaved in blocks; the cost
// must not grow with a token's history (latency ratio ~1).
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import type { CommandContext } from '../../src/commands/context.js'
import { importTokens } from '../../src/commands/import-tokens.js'
import { activateToken, verifyCode } from '../../src/commands/tokens.js'
import { registerUser } from '../../src/commands/users.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { tokenStream } from '../../src/domain/token/events.js'
import type { EventMetadata } from '../../src/event-store/types.js'
import { parseInventory } from '../../src/import/index.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { benchMetadata } from '../lib/fixtures.js'
import { checkHotpVectors, hotp } from '../lib/otp.js'
import { countStatements } from '../lib/pg-count.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { cpuSince, latencySummary, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const RELYING_APPLICATION = 'bench'
const PASSWORD = 'correct horse battery'
/** Phase 2 alternates history and fresh token in blocks of this many verifications. */
const HISTORY_BLOCK = 100
const HISTORY_LOAD_CHUNK = 100_000
/** Phase 2 passes when the history token's median verification is at most this many times the fresh one's. */
const MAX_HISTORY_RATIO = 1.5
export const GOAL = { opsPerSec: 8000, p99Ms: 10 }

export interface BenchToken {
  serial: string
  seed: Buffer
  userId: string
  /** The next counter to verify. */
  counter: number
  meta: EventMetadata
}

function userMeta(userId: string, correlationId: string): EventMetadata {
  return { ...benchMetadata(correlationId), actor: { type: 'user', id: userId }, relyingApplication: RELYING_APPLICATION }
}

/** Imports `count` HOTP tokens (OATH CSV), registers a user for each and activates it with counter 0. */
export async function prepareTokens(ctx: BenchContext, commands: CommandContext, count: number): Promise<BenchToken[]> {
  const prefix = `bv${ctx.runId}-`
  const seeds = Array.from({ length: count }, () => randomBytes(20))
  const lines = seeds.map((seed, i) => `${prefix}${i}, ${seed.toString('hex')}, hotp, 6\n`)
  const admin = { ...benchMetadata('bench-verify-setup'), actor: { type: 'admin' as const, id: 'bench' } }
  const report = await importTokens(commands, parseInventory('oath', (async function* () { yield* lines })()), admin, { format: 'oath' })
  if (report.imported !== count) {
    throw new Error(`verify setup: imported ${report.imported} of ${count} tokens (${report.rejected[0]?.reason ?? 'no reason'})`)
  }
  // scrypt is slow on purpose: users are made before timing, all at once (the thread pool runs 4 at a time).
  const users = await Promise.all(seeds.map((_, i) =>
    registerUser(commands, { upn: `bench-verify-${ctx.runId}-${i}@bench.example`, displayName: `Bench ${i}`, password: PASSWORD }, admin)))
  const tokens = seeds.map((seed, i): BenchToken => ({
    serial: `${prefix}${i}`, seed, userId: users[i]!.userId, counter: 1, meta: userMeta(users[i]!.userId, `bench-verify-${i}`),
  }))
  await Promise.all(tokens.map((t) =>
    activateToken(commands, { serial: t.serial, userId: t.userId, name: 'Bench fob', code: hotp(t.seed, 0) }, t.meta)))
  return tokens
}

export function verifyNext(commands: CommandContext, token: BenchToken) {
  const code = hotp(token.seed, token.counter)
  return verifyCode(commands, { serial: token.serial, userId: token.userId, code, relyingApplication: RELYING_APPLICATION, level: LEVELS.mfa }, token.meta)
    .then((state) => {
      token.counter++
      return state
    })
}

/** Appends `count` OtpRejected events to the token's stream in bulk and moves its row's version along. */
async function loadHistory(ctx: BenchContext, token: BenchToken, count: number): Promise<void> {
  const streamId = tokenStream(token.serial)
  const before = await sql<{ version: number }>`select version from tokens where serial = ${token.serial}`.execute(ctx.db)
  const version = before.rows[0]!.version
  const metadata = JSON.stringify(token.meta)
  for (let from = 1; from <= count; from += HISTORY_LOAD_CHUNK) {
    const to = Math.min(count, from + HISTORY_LOAD_CHUNK - 1)
    // Versions in order, so the trigger finds each predecessor and chains the hashes as for any append.
    await sql`
      insert into events (stream_id, stream_version, type, data, metadata)
      select ${streamId}, ${version}::integer + g, 'OtpRejected',
             jsonb_build_object('serial', ${token.serial}::text, 'userId', ${token.userId}::text, 'reason', 'wrong'),
             ${metadata}::jsonb
      from generate_series(${from}::integer, ${to}::integer) as g`.execute(ctx.db)
  }
  // The read model row at the stream's version, as the write path expects. (Its failure count is left at 0:
  // this is filler history, not a token that should be locked.)
  const updated = await sql`update tokens set version = ${version + count} where serial = ${token.serial} and version = ${version}`.execute(ctx.db)
  if (Number(updated.numAffectedRows) !== 1) throw new Error(`verify: the tokens row of ${token.serial} moved while loading its history`)
  await sql`update streams set version = ${version + count}, last_type = 'OtpRejected', updated_at = now()
    where stream_id = ${streamId}`.execute(ctx.db)
  await sql`vacuum (analyze) events`.execute(ctx.db)
}

export const verify: Scenario = {
  name: 'verify',
  description: 'verifyCode (1 read + 1 durable write), concurrent workers on their own HOTP tokens; then history vs fresh token',
  target: { opsPerSec: 5000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    checkHotpVectors()
    const { concurrency, verifySeconds, verifyHistoryEvents, verifyHistoryRuns } = ctx.options
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }

    const setupStart = performance.now()
    ctx.log(`verify: importing ${concurrency + 2} HOTP tokens, registering and activating them (untimed)`)
    const tokens = await prepareTokens(ctx, commands, concurrency + 2)
    const workers = tokens.slice(0, concurrency)
    const historyToken = tokens[concurrency]!
    const freshToken = tokens[concurrency + 1]!
    const setupSeconds = (performance.now() - setupStart) / 1000
    // Open every connection of the pool, and warm the code path.
    await Promise.all(workers.map((t) => verifyNext(commands, t)))

    // Phase 1: throughput.
    ctx.log(`verify: ${concurrency} workers for ${verifySeconds}s`)
    const latencies = new Samples()
    let errors = 0
    let firstError: string | null = null
    const counters0 = workers.map((t) => t.counter)
    const server0 = await backendCpu(ctx.db)
    const statements = countStatements()
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    const deadline = start + verifySeconds * 1000
    await Promise.all(workers.map(async (token) => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          await verifyNext(commands, token)
          latencies.push(performance.now() - t0)
        } catch (error) {
          errors++
          firstError ??= `${(error as Error).name}: ${(error as Error).message}`
          return
        }
      }
    }))
    const seconds = (performance.now() - start) / 1000
    const { seconds: cpuSeconds, systemShare } = cpuSince(cpuStart)
    const statementCount = statements.stop()
    const serverCpuSeconds = backendCpuSeconds(server0, await backendCpu(ctx.db))
    const latency = latencySummary(latencies)
    const verified = await sql<{ n: string }>`
      select count(*) as n from events
      where stream_id = any(${workers.map((t) => tokenStream(t.serial))}::text[]) and type = 'OtpVerified'`.execute(ctx.db)
    // Warm-up verifications are in the log too: one per worker.
    const verifiedEvents = Number(verified.rows[0]!.n) - workers.length
    const counted = workers.reduce((n, t, i) => n + t.counter - counters0[i]!, 0)

    // Phase 2: history.
    ctx.log(`verify: loading ${verifyHistoryEvents} events onto one token (untimed)`)
    const loadStart = performance.now()
    await loadHistory(ctx, historyToken, verifyHistoryEvents)
    const loadSeconds = (performance.now() - loadStart) / 1000
    // Untimed warm-up of both tokens (caches, the pool's connection), so neither pays for coming first.
    for (let i = 0; i < HISTORY_BLOCK / 2; i++) {
      await verifyNext(commands, historyToken)
      await verifyNext(commands, freshToken)
    }
    ctx.log(`verify: ${verifyHistoryRuns} sequential verifications each on the history token and a fresh one, interleaved`)
    const history = new Samples()
    const fresh = new Samples()
    let historyErrors = 0
    let historyFirstError: string | null = null
    for (let done = 0, block = 0; done < verifyHistoryRuns; done += HISTORY_BLOCK, block++) {
      const n = Math.min(HISTORY_BLOCK, verifyHistoryRuns - done)
      const order: [BenchToken, Samples][] = block % 2 === 0 ? [[historyToken, history], [freshToken, fresh]] : [[freshToken, fresh], [historyToken, history]]
      for (const [token, samples] of order) {
        for (let i = 0; i < n; i++) {
          const t0 = performance.now()
          try {
            await verifyNext(commands, token)
            samples.push(performance.now() - t0)
          } catch (error) {
            historyErrors++
            historyFirstError ??= `${(error as Error).name}: ${(error as Error).message}`
          }
        }
      }
    }
    const h = latencySummary(history)
    const f = latencySummary(fresh)
    const mean = (s: Samples) => s.sorted().reduce((a, b) => a + b, 0) / Math.max(1, s.length)
    const ratioP50 = f.p50 > 0 ? h.p50 / f.p50 : NaN
    const ratioMean = mean(fresh) > 0 ? mean(history) / mean(fresh) : NaN
    const ratioP99 = f.p99 > 0 ? h.p99 / f.p99 : NaN
    const historyVersion = (await sql<{ version: number }>`select version from tokens where serial = ${historyToken.serial}`.execute(ctx.db)).rows[0]!.version

    const opsPerSec = seconds > 0 ? latencies.length / seconds : 0
    const notes: string[] = [
      `goal ${GOAL.opsPerSec}/s at p99 <= ${GOAL.p99Ms} ms: ${opsPerSec >= GOAL.opsPerSec && latency.p99 <= GOAL.p99Ms ? 'met' : 'not met'} ` +
        `(${round(opsPerSec, 0)}/s, p99 ${latency.p99} ms)`,
    ]
    if (firstError) notes.push(`first error: ${firstError}`)
    if (historyFirstError) notes.push(`first history error: ${historyFirstError}`)

    return {
      unit: 'verifications',
      operations: latencies.length,
      seconds,
      latencyMs: latency,
      checks: [
        { name: 'every code accepted', pass: errors === 0, detail: `${errors} failed verifications` },
        {
          name: 'one OtpVerified event per verification',
          pass: verifiedEvents === latencies.length && counted === latencies.length,
          detail: `${verifiedEvents} events, ${latencies.length} verifications`,
        },
        {
          name: 'history does not slow verification',
          pass: historyErrors === 0 && ratioP50 <= MAX_HISTORY_RATIO,
          detail: `p50 ${h.p50} ms with ${verifyHistoryEvents} past events vs ${f.p50} ms fresh: ratio ${round(ratioP50, 2)} ` +
            `(<= ${MAX_HISTORY_RATIO}); mean ratio ${round(ratioMean, 2)}, p99 ratio ${round(ratioP99, 2)}; ${historyErrors} failed`,
        },
      ],
      details: {
        workers: concurrency,
        poolSize: concurrency,
        errors,
        nodeCpuSeconds: round(cpuSeconds, 2),
        nodeCpuUsPerVerification: latencies.length > 0 ? round((cpuSeconds * 1e6) / latencies.length, 1) : 0,
        // The kernel's share: socket writes and reads to PostgreSQL, one pair per round trip.
        nodeCpuSystemShare: round(systemShare, 2),
        // PostgreSQL's side (its backends for this database, when the server runs on this machine).
        ...(serverCpuSeconds === null ? {} : {
          serverBackendCpuSeconds: round(serverCpuSeconds, 2),
          serverBackendCpuUsPerVerification: latencies.length > 0 ? round((serverCpuSeconds * 1e6) / latencies.length, 1) : 0,
        }),
        // Round trips: the read, the write, and now and then the store's pg_notify after a commit.
        sqlStatementsPerVerification: latencies.length > 0 ? round(statementCount / latencies.length, 2) : 0,
        setupSeconds: round(setupSeconds, 1),
        historyEvents: verifyHistoryEvents,
        historyStreamVersion: historyVersion,
        historyLoadSeconds: round(loadSeconds, 1),
        historyRuns: verifyHistoryRuns,
        historyP50Ms: h.p50,
        historyP99Ms: h.p99,
        historyMeanMs: round(mean(history), 3),
        freshP50Ms: f.p50,
        freshP99Ms: f.p99,
        freshMeanMs: round(mean(fresh), 3),
        historyRatioP50: round(ratioP50, 3),
        historyRatioMean: round(ratioMean, 3),
        historyRatioP99: round(ratioP99, 3),
        sequentialPerSecFresh: round(fresh.length / (fresh.sorted().reduce((a, b) => a + b, 0) / 1000), 0),
      },
      notes,
    }
  },
}
