// The simulated browsers of the flow scenarios (bench/scenarios/flows.ts), and the relying application that
// redeems their codes: complete OpenID Connect authorization code flows over HTTP, in loops. They get what
// they need as plain data (a FlowPlan), so they run alike on the gateway's thread (threadBrowsers) or on a
// worker thread of their own (workerBrowsers, flow-browsers-worker.ts), and report per-flow latencies,
// failures and 429s. Every flow must end with an ID token for its user, nonce and level.
import { createHash, randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { Browser, type Response } from './http-agent.js'
import { hotp } from './otp.js'
import { Samples } from './stats.js'
import { threadCpuSeconds } from './thread-cpu.js'

/**
 * password: a new browser every flow, signing in with the password. sso: a browser with the gateway's session,
 * no page on the way. stepup: a browser with the gateway's session at pwd, asked for mfa: the Enter code page.
 */
export type FlowMode = 'password' | 'sso' | 'stepup'

export interface FlowUser {
  upn: string
  userId: string
  /** stepup: the seed of the user's active HOTP token, hex, and the counter of its next code. */
  seedHex?: string
  counter?: number
}

export interface FlowPlan {
  mode: FlowMode
  /** The gateway, http://127.0.0.1:<port>. */
  base: string
  clientId: string
  clientSecret: string
  callback: string
  password: string
  /** The acr values of src/oidc/provider.ts LEVELS (pwd asks for no code, mfa for one). */
  levels: { pwd: string; mfa: string }
  /** password and sso: one per loop. stepup: at least one per loop, taken in turn (see CODES_PER_WINDOW). */
  users: FlowUser[]
  loops: number
  addresses: 'per-flow' | 'single'
}

export interface PhaseResult {
  /** Wall-clock seconds from the start until every loop has ended. */
  seconds: number
  /** The latency of each flow that ended with a valid ID token, ms, in no particular order. */
  latencies: Float64Array
  errors: number
  /** Loops stopped by a 429. */
  throttled: number
  /** stepup: loops stopped because every user had posted the codes the per-user limit allows in a minute. */
  outOfUsers: number
  firstError: string | null
  /** Requests the browsers sent (the token requests not included). */
  browserRequests: number
  /** CPU the browsers' thread used, s; null where it cannot be read. */
  threadCpuSeconds: number | null
}

/** The browsers, wherever they run. */
export interface BrowserSide {
  /** Untimed: two flows that make the provider (and its signing key); each browser of sso and stepup signs in. */
  setUp(): Promise<void>
  /** Runs the loops for `seconds` (each finishes the flow it is in) and reports. */
  loops(seconds: number): Promise<PhaseResult>
  close(): Promise<void>
}

/** The provider's own cookies (its session and the interaction's), as opposed to the gateway's session. */
const PROVIDER_COOKIES = /^_(session|interaction)/
/**
 * The Enter code post allows 10 a minute per signed-in user (src/routes/interaction/index.ts), in a window
 * that starts at the user's first post. A user is taken again once its window is over, with a second to spare
 * for the gateway's window starting after ours.
 */
const CODES_PER_WINDOW = 10
const CODE_WINDOW_MS = 61_000
/** Browsers signing in at once in setUp (each a password check, scrypt). */
const SIGN_IN_CONCURRENCY = 8

export class Throttled extends Error {
  override name = 'Throttled'
}

/** The n-th source address: 127.a.b.c with c in 1..254, never 127.0.0.1 (n >= 0). */
export function sourceAddress(n: number): string {
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

/** A user with the browser that holds their gateway session (sso, stepup) and, for stepup, their token. */
interface Account {
  user: FlowUser
  browser: Browser | null
  seed: Buffer | null
  counter: number
  /** stepup: codes posted in the current window, which started at windowStart (Date.now()). */
  codes: number
  windowStart: number
  busy: boolean
}

/** The first line of text of a page's error message, for a failure's description. */
function pageError(res: Response): string {
  const message = res.body.match(/class="(?:error|field-error)[^"]*"[^>]*>([^<]{1,200})/)?.[1]
  return message ? `: ${message.trim()}` : ''
}

/** The browsers on the calling thread. */
export function threadBrowsers(plan: FlowPlan): BrowserSide {
  const { mode, callback } = plan
  // RFC 6749 2.3.1: id and secret form-encoded, then Basic.
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(plan.clientId)}:${encodeURIComponent(plan.clientSecret)}`).toString('base64')}`
  let addressNo = 0
  const nextAddress = () => (plan.addresses === 'single' ? undefined : sourceAddress(addressNo++))
  const accounts: Account[] = plan.users.map((user) => ({
    user,
    browser: null,
    seed: user.seedHex ? Buffer.from(user.seedHex, 'hex') : null,
    counter: user.counter ?? 0,
    codes: 0,
    windowStart: 0,
    busy: false,
  }))
  /** Requests of the browsers made for one flow and closed. */
  let freshRequests = 0
  let turn = 0

  /**
   * One complete flow in `browser`; throws on anything but an ID token for this user at the level asked for.
   * password: expects the sign-in page and signs in. sso: expects the gateway's session to vouch for the user
   * (no page on the way to the callback). stepup: expects the Enter code page and posts the token's next code.
   */
  async function flow(browser: Browser, account: Account, how: FlowMode): Promise<void> {
    const level = how === 'stepup' ? plan.levels.mfa : plan.levels.pwd
    const verifier = base64url(randomBytes(32))
    const state = base64url(randomBytes(16))
    const nonce = base64url(randomBytes(16))
    const auth = new URL(`${plan.base}/oidc/auth`)
    auth.search = new URLSearchParams({
      client_id: plan.clientId, response_type: 'code', scope: 'openid email profile', redirect_uri: callback, state, nonce,
      code_challenge: base64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
      acr_values: level,
    }).toString()

    let back: Response
    if (how === 'password') {
      const login = await browser.follow(await browser.get(auth.toString()))
      if (login.status !== 200 || !login.body.includes('<h1>Sign in</h1>')) {
        throw new Error(`expected the sign-in page, got ${login.status} at ${new URL(login.url).pathname}`)
      }
      const posted = await browser.post(`${new URL(login.url).pathname}/login`, { upn: account.user.upn, password: plan.password })
      if (posted.status === 429) throw new Throttled('the sign-in post was rate limited (429)')
      back = await browser.follow(posted, callback)
    } else {
      browser.forget(PROVIDER_COOKIES)
      const first = await browser.get(auth.toString())
      if (!first.location || !new URL(first.location).pathname.startsWith('/interaction/')) {
        throw new Error(`expected the provider to open an interaction, got ${first.status} at ${first.location ?? new URL(first.url).pathname}`)
      }
      if (how === 'sso') {
        back = await browser.follow(first, callback)
      } else {
        const page = await browser.follow(first, callback)
        if (page.status !== 200 || !page.body.includes('<h1>Enter code</h1>')) {
          throw new Error(`expected the Enter code page, got ${page.status} at ${new URL(page.location ?? page.url).pathname}`)
        }
        // The code form (the page has a Cancel form too); the browser took the CSRF token from the page.
        const action = page.body.match(/<form method="post" action="(\/interaction\/[^"]+\/code)"/)?.[1]
        if (!action) throw new Error('the Enter code page has no code form')
        const posted = await browser.post(action, { code: hotp(account.seed!, account.counter++) })
        if (posted.status === 429) throw new Throttled('the code post was rate limited (429)')
        if (posted.status !== 303) throw new Error(`the code was refused: ${posted.status}${pageError(posted)}`)
        back = await browser.follow(posted, callback)
      }
    }
    if (!back.location?.startsWith(callback)) throw new Error(`expected a redirect to the callback, got ${back.status} at ${new URL(back.url).pathname}`)
    const redirect = new URL(back.location)
    const code = redirect.searchParams.get('code')
    if (!code || redirect.searchParams.get('state') !== state) throw new Error(`the callback has no code or a wrong state: ${redirect.search.slice(0, 200)}`)

    // The relying application redeems the code: a plain POST, client_secret_basic, the PKCE verifier.
    const res = await fetch(`${plan.base}/oidc/token`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: callback, code_verifier: verifier }).toString(),
    })
    const body = (await res.json()) as { id_token?: string; access_token?: string; error?: string; error_description?: string }
    if (res.status !== 200 || !body.id_token || !body.access_token) {
      throw new Error(`token endpoint answered ${res.status}: ${body.error ?? ''} ${body.error_description ?? ''}`)
    }
    const claims = jwtPayload(body.id_token)
    if (claims.sub !== account.user.userId || claims.nonce !== nonce || claims.acr !== level) {
      throw new Error(`unexpected ID token claims sub=${String(claims.sub)} acr=${String(claims.acr)}`)
    }
    // RFC 8176: a one-time password from a hardware-secured key.
    if (how === 'stepup' && !(Array.isArray(claims.amr) && claims.amr.includes('otp') && claims.amr.includes('hwk'))) {
      throw new Error(`the ID token's amr is ${JSON.stringify(claims.amr)}, not one with otp and hwk`)
    }
  }

  /** A flow as a new browser (empty jar, new connection), closed after it. */
  async function freshFlow(account: Account): Promise<void> {
    const browser = new Browser(plan.base, nextAddress())
    try {
      await flow(browser, account, 'password')
    } finally {
      freshRequests += browser.requests
      browser.close()
    }
  }

  /** stepup: the next user, in turn, who is not in a flow and may post a code now; null when there is none. */
  function takeAccount(): Account | null {
    const now = Date.now()
    for (let i = 0; i < accounts.length; i++) {
      const account = accounts[(turn + i) % accounts.length]!
      if (account.busy) continue
      if (account.codes > 0 && now - account.windowStart >= CODE_WINDOW_MS) account.codes = 0
      if (account.codes >= CODES_PER_WINDOW) continue
      if (account.codes === 0) account.windowStart = now
      account.codes++
      account.busy = true
      turn = (turn + i + 1) % accounts.length
      return account
    }
    return null
  }

  return {
    async setUp() {
      // Creates the provider (and its signing key) and compiles the paths.
      for (let i = 0; i < 2; i++) await freshFlow(accounts[0]!)
      if (mode === 'password') return
      // Each browser signs in with the password once and keeps the gateway's session (and its connection).
      let next = 0
      await Promise.all(Array.from({ length: Math.min(SIGN_IN_CONCURRENCY, accounts.length) }, async () => {
        while (next < accounts.length) {
          const account = accounts[next++]!
          account.browser = new Browser(plan.base, nextAddress())
          await flow(account.browser, account, 'password')
          if (mode === 'sso') await flow(account.browser, account, 'sso')
        }
      }))
    },

    async loops(seconds) {
      const latencies = new Samples()
      let errors = 0
      let throttled = 0
      let outOfUsers = 0
      let firstError: string | null = null
      freshRequests = 0
      for (const account of accounts) if (account.browser) account.browser.requests = 0
      const cpu0 = threadCpuSeconds()
      const start = performance.now()
      const deadline = start + seconds * 1000
      await Promise.all(Array.from({ length: plan.loops }, async (_, i) => {
        while (performance.now() < deadline) {
          const account = mode === 'stepup' ? takeAccount() : accounts[i]!
          if (!account) {
            outOfUsers++
            firstError ??= `every one of the ${accounts.length} users has posted ${CODES_PER_WINDOW} codes within the last minute`
            return
          }
          const t0 = performance.now()
          try {
            if (mode === 'password') await freshFlow(account)
            else await flow(account.browser!, account, mode)
            latencies.push(performance.now() - t0)
          } catch (error) {
            if (error instanceof Throttled) throttled++
            else errors++
            firstError ??= `${(error as Error).name}: ${(error as Error).message}`
            return
          } finally {
            account.busy = false
          }
        }
      }))
      const elapsed = (performance.now() - start) / 1000
      const cpu1 = threadCpuSeconds()
      let browserRequests = freshRequests
      for (const account of accounts) browserRequests += account.browser?.requests ?? 0
      return {
        seconds: elapsed,
        latencies: latencies.sorted(),
        errors,
        throttled,
        outOfUsers,
        firstError,
        browserRequests,
        threadCpuSeconds: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
      }
    },

    async close() {
      for (const account of accounts) account.browser?.close()
    },
  }
}

/** What the worker is asked (flow-browsers-worker.ts), and what it answers. */
export type ToBrowsers = { id: number; do: 'setUp' | 'close' } | { id: number; do: 'loops'; seconds: number }
export type FromBrowsers = { id: number; done: true; result?: PhaseResult } | { id: number; failed: string }

/** The worker thread's entry: tsx's loader first, since a worker does not inherit the loader of its parent. */
const WORKER = new URL('./flow-browsers-thread.js', import.meta.url)

/** The browsers on a worker thread of their own, so that the calling thread only serves the gateway. */
export function workerBrowsers(plan: FlowPlan): BrowserSide {
  const worker = new Worker(WORKER, { workerData: plan })
  const pending = new Map<number, { resolve: (result: PhaseResult | undefined) => void; reject: (error: Error) => void }>()
  let lastId = 0
  let ended: Error | null = null
  const fail = (error: Error) => {
    ended ??= error
    for (const p of pending.values()) p.reject(error)
    pending.clear()
  }
  worker.on('message', (m: FromBrowsers) => {
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    if ('failed' in m) p.reject(new Error(`flow browsers: ${m.failed}`))
    else p.resolve(m.result)
  })
  worker.on('error', fail)
  worker.on('exit', (code) => fail(new Error(`flow browsers: the worker thread stopped (exit code ${code})`)))
  const ask = (message: { do: 'setUp' | 'close' } | { do: 'loops'; seconds: number }) =>
    new Promise<PhaseResult | undefined>((resolve, reject) => {
      if (ended) return reject(ended)
      const id = ++lastId
      pending.set(id, { resolve, reject })
      worker.postMessage({ id, ...message } satisfies ToBrowsers)
    })
  return {
    async setUp() {
      await ask({ do: 'setUp' })
    },
    async loops(seconds) {
      return (await ask({ do: 'loops', seconds }))!
    },
    async close() {
      await ask({ do: 'close' }).catch(() => {})
      await worker.terminate()
    },
  }
}
