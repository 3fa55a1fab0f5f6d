// flows: complete OpenID Connect authorization code flows per second over real HTTP, against the real gateway
// (bench/lib/app.ts: serverOptions + src/app.js, listening on 127.0.0.1 with PUBLIC_URL matching):
//   GET /oidc/auth (PKCE S256, acr_values=urn:tessera:loa:pwd) -> the sign-in page -> POST the password ->
//   redirects back to the provider -> the callback with a code -> POST /oidc/token (client_secret_basic,
//   code_verifier) -> an ID token.
// BENCH_FLOW_CONCURRENCY loops for BENCH_FLOW_SECONDS, each with a user of its own; every flow is a new browser
// (empty cookie jar, new connection), so every flow signs in with the password (scrypt) and opens a session.
//
// flows-sso: the same flow for users who already hold a gateway session: each loop's browser signs in once
// (untimed) and keeps its connection and the gateway's session cookie; before each flow it forgets the
// provider's cookies, so the provider opens an interaction and the gateway's session vouches for the user
// (no password): GET /oidc/auth -> GET /interaction/:uid -> GET /oidc/auth/:uid -> callback -> token.
//
// flows-stepup: the step-up path: users signed in at pwd (untimed), each with an active HOTP token, whom the
// application asks for mfa: GET /oidc/auth -> GET /interaction/:uid (Enter code) -> POST /interaction/:uid/code
// -> GET /oidc/auth/:uid -> callback -> token, an ID token at mfa with amr otp and hwk.
//
// The gateway's cost, not the bench's: the browsers run on a worker thread of their own (bench/lib/flow-browsers.ts;
// BENCH_FLOW_BROWSERS=thread puts them back on the gateway's thread), and the loops run untimed for
// BENCH_FLOW_WARMUP_SECONDS first, so the window does not pay for compiling the paths.
//
// Rate limits: the sign-in post is limited per address (see src/routes/interaction/index.ts), keyed on the
// connection's address. By default each flow's browser connects from an address of its own in 127.0.0.0/8, as
// distinct clients would, so the limits run but do not throttle; BENCH_FLOW_ADDRESSES=single sends every flow
// from 127.0.0.1 and shows the limit (a loop stops at its first 429). The code post is limited to 10 a minute per
// user: flows-stepup has more users than loops (BENCH_STEPUP_USERS), each taken in turn while it has codes left.
import { randomBytes, randomUUID } from 'node:crypto'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { registerClient } from '../../src/commands/clients.js'
import { importTokens } from '../../src/commands/import-tokens.js'
import { activateToken } from '../../src/commands/tokens.js'
import { registerUser } from '../../src/commands/users.js'
import { verifyPassword, hashPassword } from '../../src/crypto/password.js'
import { parseInventory } from '../../src/import/index.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { startBenchApp, type BenchApp } from '../lib/app.js'
import { startBareProvider } from '../lib/bare-provider.js'
import { benchMetadata } from '../lib/fixtures.js'
import { threadBrowsers, workerBrowsers, type FlowMode, type FlowPlan, type FlowUser } from '../lib/flow-browsers.js'
import { checkHotpVectors, hotp } from '../lib/otp.js'
import { countStatements } from '../lib/pg-count.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { cpuSince, latencySummary, round, Samples } from '../lib/stats.js'
import { threadCpuSeconds } from '../lib/thread-cpu.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const CALLBACK = 'https://rp.bench.example/callback'
const PASSWORD = 'correct horse battery'
/**
 * flows-stepup's users by default: each may post 10 codes a minute, so 250 keep up with 190 flows/s over a
 * 3 s warm-up and a 10 s window (and each costs two password hashes in the setup).
 */
const STEPUP_USERS = 250
/** The latency target for the step-up path at 16 loops. */
const STEPUP_P99_MS = 100
const ADMIN = { ...benchMetadata('bench-flows-setup'), actor: { type: 'admin' as const, id: 'bench' } }

/** The flow scenarios' own settings (bench/README.md), read where they are used. */
interface FlowSettings {
  /** BENCH_FLOW_WARMUP_SECONDS: the loops run this long untimed before the window (0: not at all). */
  warmUpSeconds: number
  /** BENCH_FLOW_BROWSERS: the browsers on a worker thread, or on the gateway's thread as before. */
  browsers: 'worker' | 'thread'
  /** BENCH_STEPUP_USERS: users flows-stepup takes in turn. */
  stepUpUsers: number
}

function flowSettings(loops: number): FlowSettings {
  const env = process.env
  const warmUpText = env.BENCH_FLOW_WARMUP_SECONDS || '3'
  const warmUpSeconds = Number(warmUpText)
  if (!Number.isFinite(warmUpSeconds) || warmUpSeconds < 0) throw new Error(`BENCH_FLOW_WARMUP_SECONDS must be a number of seconds >= 0, not ${JSON.stringify(warmUpText)}`)
  const browsers = env.BENCH_FLOW_BROWSERS || 'worker'
  if (browsers !== 'worker' && browsers !== 'thread') throw new Error(`BENCH_FLOW_BROWSERS must be worker or thread, not ${JSON.stringify(browsers)}`)
  const usersText = env.BENCH_STEPUP_USERS || String(Math.max(STEPUP_USERS, loops))
  const stepUpUsers = Number(usersText)
  if (!Number.isInteger(stepUpUsers) || stepUpUsers < loops) {
    throw new Error(`BENCH_STEPUP_USERS must be a whole number of at least BENCH_FLOW_CONCURRENCY (${loops}), not ${JSON.stringify(usersText)}`)
  }
  return { warmUpSeconds, browsers, stepUpUsers }
}

/** Registers `count` users with the bench password (scrypt each, so before timing). */
function registerUsers(gateway: BenchApp, prefix: string, count: number) {
  return Promise.all(Array.from({ length: count }, (_, i) =>
    registerUser(gateway.app.commands, { upn: `${prefix}-${i}@bench.example`, displayName: `Bench ${i}`, password: PASSWORD }, ADMIN)))
}

/**
 * stepup: a HOTP token for each user, imported through the privacyIDEA OATH CSV parser and importTokens with
 * the gateway's own vault, and activated with its counter-0 code, as bench/scenarios/verify.ts does.
 */
async function giveTokens(ctx: BenchContext, gateway: BenchApp, users: { upn: string; userId: string }[]): Promise<FlowUser[]> {
  const commands = gateway.app.commands
  const prefix = `bs${ctx.runId}-`
  const seeds = users.map(() => randomBytes(20))
  const lines = seeds.map((seed, i) => `${prefix}${i}, ${seed.toString('hex')}, hotp, 6\n`)
  const report = await importTokens(commands, parseInventory('oath', (async function* () { yield* lines })()), ADMIN, { format: 'oath' })
  if (report.imported !== users.length) {
    throw new Error(`flows-stepup setup: imported ${report.imported} of ${users.length} tokens (${report.rejected[0]?.reason ?? 'no reason'})`)
  }
  await Promise.all(users.map((user, i) => activateToken(commands, { serial: `${prefix}${i}`, userId: user.userId, name: 'Bench fob', code: hotp(seeds[i]!, 0) },
    { ...benchMetadata(`bench-stepup-${i}`), actor: { type: 'user', id: user.userId } })))
  return users.map((user, i) => ({ upn: user.upn, userId: user.userId, seedHex: seeds[i]!.toString('hex'), counter: 1 }))
}

/**
 * What the browsers are pointed at: the gateway (its client, users and catch-up done), or the bare provider
 * (bench/lib/bare-provider.ts) with the same client and users in memory.
 */
interface Served {
  base: string
  clientId: string
  clientSecret: string
  users: FlowUser[]
  /** Seconds the gateway's catch-up projections took in the setup, and the log they read (gateway only). */
  catchUp: { seconds: number; logEvents: number } | null
  rateLimits: string
  close(): Promise<void>
}

async function serveGateway(ctx: BenchContext, mode: FlowMode, settings: FlowSettings, name: string): Promise<Served> {
  const gateway = await startBenchApp(ctx.url)
  try {
    const clientId = `bench-${mode}-${ctx.runId}`
    const client = await registerClient(gateway.app.commands, { clientId, name: 'Bench RP', redirectUris: [CALLBACK], public: false }, ADMIN)
    const userCount = mode === 'stepup' ? settings.stepUpUsers : ctx.options.flowConcurrency
    if (mode === 'stepup') ctx.log(`${name}: registering ${userCount} users with an active HOTP token each (untimed)`)
    const registered = await registerUsers(gateway, `bench-flow-${mode}-${ctx.runId}`, userCount)
    const users: FlowUser[] = mode === 'stepup' ? await giveTokens(ctx, gateway, registered) : registered

    // The gateway's catch-up projections (audit index, statistics) start from the beginning of the log, which
    // holds what earlier scenarios wrote: let them catch up before timing, or the flows share the machine
    // with that backlog (and closing the gateway would wait for it).
    const catchUpStart = performance.now()
    await gateway.app.projections.catchUp()
    const seconds = (performance.now() - catchUpStart) / 1000
    const logEvents = Number((await sql<{ n: string }>`select coalesce(max(position), 0) as n from events`.execute(ctx.db)).rows[0]!.n)
    return {
      base: gateway.base, clientId, clientSecret: client.secret!, users, catchUp: { seconds, logEvents },
      get rateLimits() {
        return gateway.app.limitsState()
      },
      close: () => gateway.close(),
    }
  } catch (error) {
    await gateway.close()
    throw error
  }
}

async function serveBare(ctx: BenchContext): Promise<Served> {
  const clientId = `bench-bare-${ctx.runId}`
  const clientSecret = randomBytes(32).toString('base64url')
  const users = Array.from({ length: ctx.options.flowConcurrency }, (_, i) => ({ upn: `bench-flow-bare-${ctx.runId}-${i}@bench.example`, userId: randomUUID() }))
  const bare = await startBareProvider({ clientId, clientSecret, redirectUri: CALLBACK }, users, PASSWORD)
  return { base: bare.base, clientId, clientSecret, users, catchUp: null, rateLimits: 'none (bare provider)', close: () => bare.close() }
}

async function runFlows(ctx: BenchContext, mode: FlowMode, target: 'gateway' | 'bare' = 'gateway'): Promise<ScenarioResult> {
  const { flowConcurrency, flowSeconds, flowAddresses } = ctx.options
  const settings = flowSettings(flowConcurrency)
  const name = target === 'bare' ? 'flows-bare' : mode === 'password' ? 'flows' : `flows-${mode}`
  const setupStart = performance.now()
  const served = target === 'bare' ? await serveBare(ctx) : await serveGateway(ctx, mode, settings, name)
  try {
    const { users } = served
    const userCount = users.length
    // What one password check costs here (the same scrypt parameters as the sign-in).
    const stored = await hashPassword(PASSWORD)
    const scryptStart = performance.now()
    const scryptRuns = 8
    for (let i = 0; i < scryptRuns; i++) await verifyPassword(PASSWORD, stored)
    const scryptMs = (performance.now() - scryptStart) / scryptRuns

    const plan: FlowPlan = {
      mode, base: served.base, clientId: served.clientId, clientSecret: served.clientSecret, callback: CALLBACK, password: PASSWORD,
      levels: { pwd: LEVELS.pwd, mfa: LEVELS.mfa }, users, loops: flowConcurrency, addresses: flowAddresses,
    }
    const browsers = settings.browsers === 'worker' ? workerBrowsers(plan) : threadBrowsers(plan)
    try {
      // Untimed: the provider's first flows, each browser's sign-in (sso, stepup), then the warm-up.
      await browsers.setUp()
      const warmUp = settings.warmUpSeconds > 0 ? await browsers.loops(settings.warmUpSeconds) : null
      const setupSeconds = (performance.now() - setupStart) / 1000

      ctx.log(`${name}: ${flowConcurrency} loops for ${flowSeconds}s after ${settings.warmUpSeconds}s of warm-up, browsers on ${settings.browsers === 'worker' ? 'a worker thread' : "the gateway's thread"}, source addresses ${flowAddresses}`)
      const server0 = await backendCpu(ctx.db)
      const statements = countStatements()
      const cpuStart = process.cpuUsage()
      const thread0 = threadCpuSeconds()
      const elu0 = performance.eventLoopUtilization()
      const timed = await browsers.loops(flowSeconds)
      const elu = performance.eventLoopUtilization(elu0)
      const thread1 = threadCpuSeconds()
      const { seconds: cpuSeconds, systemShare } = cpuSince(cpuStart)
      const statementCount = statements.stop()
      const serverCpuSeconds = backendCpuSeconds(server0, await backendCpu(ctx.db))

      const latencies = new Samples()
      for (const ms of timed.latencies) latencies.push(ms)
      const flowsDone = latencies.length
      const summary = latencySummary(latencies)
      // Failed flows sent requests and statements too; per flow is exact only when none failed.
      const per = (n: number, digits = 1) => (flowsDone > 0 ? round(n / flowsDone, digits) : 0)
      const mainThreadCpuSeconds = thread0 === null || thread1 === null ? null : thread1 - thread0
      const errors = timed.errors + (warmUp?.errors ?? 0)
      const throttled = timed.throttled + (warmUp?.throttled ?? 0)
      const outOfUsers = timed.outOfUsers + (warmUp?.outOfUsers ?? 0)

      const notes: string[] = []
      if (flowAddresses === 'single') notes.push('every flow from 127.0.0.1: the per-address sign-in limits apply to all flows together')
      notes.push(settings.browsers === 'worker'
        ? "browsers on a worker thread: the main thread's CPU and busy time are the gateway's alone"
        : "browsers on the gateway's thread (BENCH_FLOW_BROWSERS=thread): the main thread's CPU and busy time are the gateway's and the browsers'")
      const firstError = warmUp?.firstError ?? timed.firstError
      if (firstError) notes.push(`first failure${warmUp?.firstError ? ' (in the warm-up)' : ''}: ${firstError}`)
      return {
        unit: 'flows',
        operations: flowsDone,
        seconds: timed.seconds,
        latencyMs: summary,
        checks: [
          { name: 'every flow ended with an ID token', pass: errors === 0, detail: `${errors} failed flows (${warmUp?.errors ?? 0} in the warm-up)` },
          { name: 'not rate limited', pass: throttled === 0, detail: `${throttled} loops stopped by a 429` },
          ...(mode === 'stepup' ? [{
            name: 'enough users for the code limit (10 a minute per user)',
            pass: outOfUsers === 0,
            detail: outOfUsers === 0 ? `${userCount} users` : `${outOfUsers} loops stopped with every one of ${userCount} users at its limit: raise BENCH_STEPUP_USERS`,
          }, {
            name: `p99 under ${STEPUP_P99_MS} ms`,
            pass: summary.p99 < STEPUP_P99_MS,
            detail: `p99 ${summary.p99} ms at ${flowConcurrency} loops`,
          }] : []),
        ],
        details: {
          loops: flowConcurrency,
          ...(mode === 'stepup' ? { users: userCount } : {}),
          sourceAddresses: flowAddresses,
          browsers: settings.browsers,
          warmUpSeconds: settings.warmUpSeconds,
          warmUpFlows: warmUp?.latencies.length ?? 0,
          rateLimits: served.rateLimits,
          errors,
          throttled,
          // CPU: the whole process (every thread: gateway, browsers' worker, GC and libuv threads), then the main
          // thread's own (/proc/thread-self, Linux), its busy time (event loop utilization x wall time: CPU and
          // waiting for a core), and the browsers' thread's CPU.
          nodeCpuSeconds: round(cpuSeconds, 2),
          nodeCpuMsPerFlow: per(cpuSeconds * 1e3, 2),
          nodeCpuSystemShare: round(systemShare, 2),
          ...(mainThreadCpuSeconds === null ? {} : { mainThreadCpuMsPerFlow: per(mainThreadCpuSeconds * 1e3, 2) }),
          mainThreadBusyMsPerFlow: per(elu.active, 2),
          mainThreadUtilization: round(elu.utilization, 2),
          ...(settings.browsers === 'worker' && timed.threadCpuSeconds !== null ? { browserThreadCpuMsPerFlow: per(timed.threadCpuSeconds * 1e3, 2) } : {}),
          ...(serverCpuSeconds === null ? {} : {
            serverBackendCpuSeconds: round(serverCpuSeconds, 2),
            serverBackendCpuMsPerFlow: per(serverCpuSeconds * 1e3, 2),
          }),
          // Per flow: the browser's HTTP requests (the token request comes on top), and the gateway's SQL
          // statements (begin and commit count), all from the main thread.
          browserRequestsPerFlow: per(timed.browserRequests),
          sqlStatementsPerFlow: per(statementCount),
          scryptMsPerPasswordCheck: round(scryptMs, 1),
          // What signing in with a password every flow allows at most here: each core hashes 1000/scrypt ms a second.
          passwordCeilingFlowsPerSec: round((os.cpus().length * 1000) / scryptMs, 0),
          uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
          setupSeconds: round(setupSeconds, 1),
          // Untimed, in the setup: the catch-up projections reading the log the earlier scenarios left.
          ...(served.catchUp ? { projectionCatchUpSeconds: round(served.catchUp.seconds, 1), logEventsAtStart: served.catchUp.logEvents } : {}),
        },
        notes,
      }
    } finally {
      await browsers.close()
    }
  } finally {
    await served.close()
  }
}

export const flows: Scenario = {
  name: 'flows',
  description: 'authorization code flows over HTTP (authorize, password sign-in, code, token), a new browser each',
  target: { opsPerSec: 1000 },
  run: (ctx) => runFlows(ctx, 'password'),
}

export const flowsSso: Scenario = {
  name: 'flows-sso',
  description: 'authorization code flows over HTTP for users with a gateway session (authorize, interaction, code, token)',
  target: { opsPerSec: 1000 },
  run: (ctx) => runFlows(ctx, 'sso'),
}

export const flowsStepup: Scenario = {
  name: 'flows-stepup',
  description: 'step-up flows over HTTP for users signed in at pwd, asked for mfa (authorize, Enter code, code, token)',
  target: { opsPerSec: 1000 },
  run: (ctx) => {
    checkHotpVectors()
    return runFlows(ctx, 'stepup')
  },
}

export const flowsBare: Scenario = {
  name: 'flows-bare',
  description: "flows-sso's flows against a bare oidc-provider with in-memory storage, the reference for the gateway's overhead",
  target: { opsPerSec: 1000 },
  run: (ctx) => runFlows(ctx, 'sso', 'bare'),
}
