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
// Rate limits: the sign-in post is limited per address (10/min before the user is known, 30/min in all; see
// src/routes/interaction/index.ts), keyed on the connection's address. By default each flow's browser connects
// from an address of its own in 127.0.0.0/8, as distinct clients would, so the limits run but do not throttle;
// BENCH_FLOW_ADDRESSES=single sends every flow from 127.0.0.1 and shows the limit (a loop stops at its first 429).
import { createHash, randomBytes } from 'node:crypto'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { registerClient } from '../../src/commands/clients.js'
import { registerUser } from '../../src/commands/users.js'
import { verifyPassword, hashPassword } from '../../src/crypto/password.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { startBenchApp } from '../lib/app.js'
import { benchMetadata } from '../lib/fixtures.js'
import { Browser } from '../lib/http-agent.js'
import { countStatements } from '../lib/pg-count.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { cpuSince, latencySummary, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const CALLBACK = 'https://rp.bench.example/callback'
const PASSWORD = 'correct horse battery'
/** The provider's own cookies (its session and the interaction's), as opposed to the gateway's session. */
const PROVIDER_COOKIES = /^_(session|interaction)/

type Mode = 'password' | 'sso'

class Throttled extends Error {
  override name = 'Throttled'
}

/** The n-th flow's source address: 127.a.b.c with c in 1..254, never 127.0.0.1 (n >= 0). */
function sourceAddress(n: number): string {
  const c = 1 + (n % 254)
  const b = Math.floor(n / 254) % 256
  const a = 1 + (Math.floor(n / (254 * 256)) % 254)
  return `127.${a}.${b}.${c}`
}

function base64url(bytes: Buffer): string {
  return bytes.toString('base64url')
}

function jwtPayload(jwt: string): Record<string, unknown> {
  const part = jwt.split('.')[1]
  if (!part) throw new Error('the ID token is not a JWT')
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>
}

interface Rp {
  base: string
  clientId: string
  authorization: string
}

/** Requests the browsers sent (the token request not included). */
let browserRequests = 0

/**
 * One complete flow in `browser`; throws on anything but an ID token at the pwd level for this user.
 * 'password': expects the sign-in page and signs in. 'sso': expects the gateway's session to vouch for the user
 * (no page on the way to the callback).
 */
async function flow(rp: Rp, browser: Browser, upn: string, userId: string, mode: Mode): Promise<void> {
  const verifier = base64url(randomBytes(32))
  const state = base64url(randomBytes(16))
  const nonce = base64url(randomBytes(16))
  const auth = new URL(`${rp.base}/oidc/auth`)
  auth.search = new URLSearchParams({
    client_id: rp.clientId, response_type: 'code', scope: 'openid email profile', redirect_uri: CALLBACK, state, nonce,
    code_challenge: base64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
    acr_values: LEVELS.pwd,
  }).toString()

  let back
  if (mode === 'password') {
    const login = await browser.follow(await browser.get(auth.toString()))
    if (login.status !== 200 || !login.body.includes('<h1>Sign in</h1>')) {
      throw new Error(`expected the sign-in page, got ${login.status} at ${new URL(login.url).pathname}`)
    }
    const posted = await browser.post(`${new URL(login.url).pathname}/login`, { upn, password: PASSWORD })
    if (posted.status === 429) throw new Throttled('the sign-in post was rate limited (429)')
    back = await browser.follow(posted, CALLBACK)
  } else {
    browser.forget(PROVIDER_COOKIES)
    const first = await browser.get(auth.toString())
    if (!first.location || !new URL(first.location).pathname.startsWith('/interaction/')) {
      throw new Error(`expected the provider to open an interaction, got ${first.status} at ${first.location ?? new URL(first.url).pathname}`)
    }
    back = await browser.follow(first, CALLBACK)
  }
  if (!back.location?.startsWith(CALLBACK)) throw new Error(`expected a redirect to the callback, got ${back.status} at ${new URL(back.url).pathname}`)
  const callback = new URL(back.location)
  const code = callback.searchParams.get('code')
  if (!code || callback.searchParams.get('state') !== state) throw new Error(`the callback has no code or a wrong state: ${callback.search.slice(0, 200)}`)

  // The relying application redeems the code: a plain POST, client_secret_basic, the PKCE verifier.
  const res = await fetch(`${rp.base}/oidc/token`, {
    method: 'POST',
    headers: { authorization: rp.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: CALLBACK, code_verifier: verifier }).toString(),
  })
  const body = (await res.json()) as { id_token?: string; access_token?: string; error?: string; error_description?: string }
  if (res.status !== 200 || !body.id_token || !body.access_token) {
    throw new Error(`token endpoint answered ${res.status}: ${body.error ?? ''} ${body.error_description ?? ''}`)
  }
  const claims = jwtPayload(body.id_token)
  if (claims.sub !== userId || claims.nonce !== nonce || claims.acr !== LEVELS.pwd) {
    throw new Error(`unexpected ID token claims sub=${String(claims.sub)} acr=${String(claims.acr)}`)
  }
}

/** A flow as a new browser (empty jar, new connection), closed after it. */
async function freshFlow(rp: Rp, upn: string, userId: string, localAddress: string | undefined): Promise<void> {
  const browser = new Browser(rp.base, localAddress)
  try {
    await flow(rp, browser, upn, userId, 'password')
  } finally {
    browserRequests += browser.requests
    browser.close()
  }
}

async function runFlows(ctx: BenchContext, mode: Mode): Promise<ScenarioResult> {
  const { flowConcurrency, flowSeconds, flowAddresses } = ctx.options
  const setupStart = performance.now()
  const gateway = await startBenchApp(ctx.url)
  try {
    const commands = gateway.app.commands
    const admin = { ...benchMetadata('bench-flows-setup'), actor: { type: 'admin' as const, id: 'bench' } }
    const clientId = `bench-${mode}-${ctx.runId}`
    const client = await registerClient(commands, { clientId, name: 'Bench RP', redirectUris: [CALLBACK], public: false }, admin)
    const rp: Rp = {
      base: gateway.base,
      clientId,
      // RFC 6749 2.3.1: id and secret form-encoded, then Basic.
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(client.secret!)}`).toString('base64')}`,
    }
    const users = await Promise.all(Array.from({ length: flowConcurrency }, (_, i) =>
      registerUser(commands, { upn: `bench-flow-${mode}-${ctx.runId}-${i}@bench.example`, displayName: `Bench ${i}`, password: PASSWORD }, admin)))

    // The gateway's catch-up projections (audit index, statistics) start from the beginning of the log, which
    // holds what earlier scenarios wrote: let them catch up before timing, or the flows share the machine
    // with that backlog (and closing the gateway would wait for it).
    const catchUpStart = performance.now()
    await gateway.app.projections.catchUp()
    const catchUpSeconds = (performance.now() - catchUpStart) / 1000
    const logEvents = Number((await sql<{ n: string }>`select coalesce(max(position), 0) as n from events`.execute(ctx.db)).rows[0]!.n)

    // What one password check costs here (the same scrypt parameters as the sign-in).
    const stored = await hashPassword(PASSWORD)
    const scryptStart = performance.now()
    const scryptRuns = 8
    for (let i = 0; i < scryptRuns; i++) await verifyPassword(PASSWORD, stored)
    const scryptMs = (performance.now() - scryptStart) / scryptRuns

    let addressNo = 0
    const nextAddress = () => (flowAddresses === 'single' ? undefined : sourceAddress(addressNo++))
    // Warm-up, untimed: creates the provider (and its signing key) and compiles the paths.
    for (let i = 0; i < 2; i++) await freshFlow(rp, users[0]!.upn, users[0]!.userId, nextAddress())
    // Single sign-on: each loop's browser signs in once, untimed, and keeps the gateway's session.
    const browsers = mode === 'sso' ? users.map(() => new Browser(rp.base, nextAddress())) : []
    await Promise.all(browsers.map(async (browser, i) => {
      await flow(rp, browser, users[i]!.upn, users[i]!.userId, 'password')
      await flow(rp, browser, users[i]!.upn, users[i]!.userId, 'sso')
      browser.requests = 0
    }))
    const setupSeconds = (performance.now() - setupStart) / 1000

    ctx.log(`${mode === 'sso' ? 'flows-sso' : 'flows'}: ${flowConcurrency} loops for ${flowSeconds}s, source addresses ${flowAddresses}`)
    const latencies = new Samples()
    let errors = 0
    let throttled = 0
    let firstError: string | null = null
    browserRequests = 0
    const server0 = await backendCpu(ctx.db)
    const statements = countStatements()
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    const deadline = start + flowSeconds * 1000
    await Promise.all(users.map(async (user, i) => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          if (mode === 'sso') await flow(rp, browsers[i]!, user.upn, user.userId, 'sso')
          else await freshFlow(rp, user.upn, user.userId, nextAddress())
          latencies.push(performance.now() - t0)
        } catch (error) {
          if (error instanceof Throttled) throttled++
          else errors++
          firstError ??= `${(error as Error).name}: ${(error as Error).message}`
          return
        }
      }
    }))
    const seconds = (performance.now() - start) / 1000
    const { seconds: cpuSeconds, systemShare } = cpuSince(cpuStart)
    const statementCount = statements.stop()
    for (const browser of browsers) {
      browserRequests += browser.requests
      browser.close()
    }
    const serverCpuSeconds = backendCpuSeconds(server0, await backendCpu(ctx.db))
    // Failed flows sent requests and statements too; per flow is exact only when none failed.
    const per = (n: number) => (latencies.length > 0 ? round(n / latencies.length, 1) : 0)

    const notes: string[] = []
    if (flowAddresses === 'single') notes.push('every flow from 127.0.0.1: the per-address sign-in limits apply to all flows together')
    if (firstError) notes.push(`first failure: ${firstError}`)
    return {
      unit: 'flows',
      operations: latencies.length,
      seconds,
      latencyMs: latencySummary(latencies),
      checks: [
        { name: 'every flow ended with an ID token', pass: errors === 0, detail: `${errors} failed flows` },
        { name: 'not rate limited', pass: throttled === 0, detail: `${throttled} loops stopped by a 429` },
      ],
      details: {
        loops: flowConcurrency,
        sourceAddresses: flowAddresses,
        errors,
        throttled,
        // Node runs the gateway and the browsers: its CPU per flow is the gateway's plus the client's.
        nodeCpuSeconds: round(cpuSeconds, 2),
        nodeCpuMsPerFlow: latencies.length > 0 ? round((cpuSeconds * 1e3) / latencies.length, 2) : 0,
        nodeCpuSystemShare: round(systemShare, 2),
        ...(serverCpuSeconds === null ? {} : {
          serverBackendCpuSeconds: round(serverCpuSeconds, 2),
          serverBackendCpuMsPerFlow: latencies.length > 0 ? round((serverCpuSeconds * 1e3) / latencies.length, 2) : 0,
        }),
        // Per flow: the browser's HTTP requests (the token request comes on top), and the gateway's SQL
        // statements (begin and commit count), all from this process.
        browserRequestsPerFlow: per(browserRequests),
        sqlStatementsPerFlow: per(statementCount),
        scryptMsPerPasswordCheck: round(scryptMs, 1),
        // What signing in with a password every flow allows at most here: each core hashes 1000/scrypt ms a second.
        passwordCeilingFlowsPerSec: round((os.cpus().length * 1000) / scryptMs, 0),
        uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
        setupSeconds: round(setupSeconds, 1),
        // Untimed, in the setup: the catch-up projections reading the log the earlier scenarios left.
        projectionCatchUpSeconds: round(catchUpSeconds, 1),
        logEventsAtStart: logEvents,
      },
      notes,
    }
  } finally {
    await gateway.close()
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
