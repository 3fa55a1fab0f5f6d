// Rate limits (@fastify/rate-limit), shared by every gateway process through Redis when REDIS_URL is
// set, per process otherwise. Routes opt in with app.limit({...}) in their preHandler (one or several).
// Also a failure counter (app.failures): counts only what failed (a wrong password from an address),
// in fixed windows, in the same Redis or in memory.
import fp from 'fastify-plugin'
import rateLimit, { type CreateRateLimitOptions } from '@fastify/rate-limit'
import { createRequire } from 'node:module'
import { Redis } from 'ioredis'
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'

/** Counts failures per key in fixed windows. */
export interface FailureCounter {
  /** Counts one more failure for key; returns the count in the current window and the ms left in it. */
  add(key: string, windowMs: number): Promise<{ count: number; resetInMs: number }>
  /** The count in the current window, and the ms left in it. */
  get(key: string): Promise<{ count: number; resetInMs: number }>
  /** Takes back one count (an attempt counted before it was checked, that turned out right). */
  forgive(key: string): Promise<void>
  /** Forgets the key's count (a run of failures ended by a success). */
  clear(key: string): Promise<void>
}

export function memoryFailureCounter(now: () => number = Date.now): FailureCounter {
  const windows = new Map<string, { count: number; until: number }>()
  const current = (key: string) => {
    const w = windows.get(key)
    if (w && w.until > now()) return w
    if (w) windows.delete(key)
    return null
  }
  return {
    async add(key, windowMs) {
      if (windows.size > 100_000) for (const [k, w] of windows) if (w.until <= now()) windows.delete(k)
      const w = current(key) ?? { count: 0, until: now() + windowMs }
      w.count++
      windows.set(key, w)
      return { count: w.count, resetInMs: w.until - now() }
    },
    async get(key) {
      const w = current(key)
      return { count: w?.count ?? 0, resetInMs: w ? w.until - now() : 0 }
    },
    async forgive(key) {
      const w = current(key)
      if (w && w.count > 0) w.count--
    },
    async clear(key) {
      windows.delete(key)
    },
  }
}

export function redisFailureCounter(redis: Redis): FailureCounter {
  const prefix = 'tessera-failures:'
  return {
    async add(key, windowMs) {
      const result = await redis.multi().incr(prefix + key).pexpire(prefix + key, windowMs, 'NX').pttl(prefix + key).exec()
      return { count: Number(result?.[0]?.[1] ?? 0), resetInMs: Math.max(0, Number(result?.[2]?.[1] ?? 0)) }
    },
    async get(key) {
      const result = await redis.multi().get(prefix + key).pttl(prefix + key).exec()
      return { count: Number(result?.[0]?.[1] ?? 0), resetInMs: Math.max(0, Number(result?.[1]?.[1] ?? 0)) }
    },
    async forgive(key) {
      // Only a key that still exists, and never below zero: a window that ran out stays gone.
      await redis.eval("local n = tonumber(redis.call('get', KEYS[1]) or '0') if n > 0 then redis.call('decr', KEYS[1]) end return 0", 1, prefix + key)
    },
    async clear(key) {
      await redis.del(prefix + key)
    },
  }
}

/**
 * While Redis cannot be reached, failures are counted by this process alone (never not at all): the limits
 * hold per process, and readiness says so (degraded). Back on Redis, the shared counts take over again.
 */
function fallingBack(counter: FailureCounter, local: FailureCounter, down: (error: unknown) => void, up: () => void): FailureCounter {
  const either = <T>(shared: () => Promise<T>, fallback: () => Promise<T>) => shared().then((value) => (up(), value), (error) => (down(error), fallback()))
  return {
    add: (key, windowMs) => either(() => counter.add(key, windowMs), () => local.add(key, windowMs)),
    get: (key) => either(() => counter.get(key), () => local.get(key)),
    forgive: (key) => either(() => counter.forgive(key), () => local.forgive(key)),
    clear: (key) => either(() => counter.clear(key), () => local.clear(key)),
  }
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void
interface Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void
  read?(key: string, cb: Callback, timeWindow: number, max: number): void
  child(options: unknown): Store
}

const require = createRequire(import.meta.url)
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => Store
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache?: number) => Store

/** The rate limits' store: Redis, shared by every process; this process's memory while Redis is down. */
function fallbackStore(shared: Store, local: Store, down: (error: unknown) => void, up: () => void): Store {
  const either = (method: 'incr' | 'read') => (key: string, cb: Callback, timeWindow: number, max: number) => {
    const s = shared[method]
    if (!s) return local[method]!.call(local, key, cb, timeWindow, max)
    s.call(shared, key, (error, result) => {
      if (!error) {
        up()
        return cb(null, result)
      }
      down(error)
      local[method]!.call(local, key, cb, timeWindow, max)
    }, timeWindow, max)
  }
  return { incr: either('incr'), read: either('read'), child: (options) => fallbackStore(shared.child(options), local.child(options), down, up) }
}

/** Where the limits are counted now. */
export type LimitsState = 'shared' | 'per-process' | 'local'

declare module 'fastify' {
  interface FastifyInstance {
    /** shared: in Redis; per-process: Redis is configured but down, each process counts alone; local: no Redis configured. */
    limitsState(): LimitsState
    /** Asks Redis now (for readiness): true when it answers. */
    pingLimits(): Promise<boolean>
    failures: FailureCounter
    /**
     * A limiter for a route's preHandler. Unlike app.rateLimit, several of them on one route each count and
     * each refuse: @fastify/rate-limit's own hook marks the request and lets only the first one run.
     */
    limit(options: CreateRateLimitOptions): preHandlerAsyncHookHandler
  }
}

/** The 429 every limiter answers with. */
function tooMany(ttlMs: number): Error & { statusCode: number } {
  return Object.assign(new Error(`Too many attempts. Wait ${Math.ceil(ttlMs / 1000)} seconds and try again.`), { statusCode: 429, name: 'TooManyRequests' })
}

async function rateLimitPlugin(app: FastifyInstance): Promise<void> {
  let redis: Redis | null = null
  let down = false
  const markDown = (error: unknown) => {
    if (!down) app.log.warn({ err: error }, 'redis for rate limits is unreachable: limits are counted per process until it is back')
    down = true
  }
  const markUp = () => {
    if (down) app.log.info('redis for rate limits is back: limits are shared again')
    down = false
  }
  if (app.config.redisUrl) {
    // Commands fail at once while it is down (no offline queue): requests fall back, they do not wait.
    redis = new Redis(app.config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, commandTimeout: 1000, enableOfflineQueue: false, lazyConnect: false })
    redis.on('error', (error) => markDown(error))
    app.addHook('onClose', async () => {
      await redis?.quit().catch(() => {})
    })
  }
  app.decorate('limitsState', () => (redis ? (down ? 'per-process' : 'shared') : 'local'))
  app.decorate('pingLimits', async () => {
    if (!redis) return false
    try {
      await redis.ping()
      markUp()
      return true
    } catch (error) {
      markDown(error)
      return false
    }
  })
  app.decorate('failures', redis ? fallingBack(redisFailureCounter(redis), memoryFailureCounter(), markDown, markUp) : memoryFailureCounter())
  app.decorate('limit', (options: Parameters<FastifyInstance['limit']>[0]) => {
    let check: ReturnType<FastifyInstance['createRateLimit']> | null = null
    return async (request: FastifyRequest, reply: FastifyReply) => {
      check ??= app.createRateLimit(options)
      const result = await check(request)
      if (result.isAllowed) return
      if (!result.isExceeded) return
      reply.header('retry-after', result.ttlInSeconds)
      throw tooMany(result.ttl)
    }
  })
  const shared: Redis | null = redis
  const storeClass = (client: Redis) => class {
    constructor(params: { continueExceeding: boolean; exponentialBackoff: boolean }) {
      return fallbackStore(new RedisStore(params.continueExceeding, params.exponentialBackoff, client, 'tessera-rl:'),
        new LocalStore(params.continueExceeding, params.exponentialBackoff), markDown, markUp) as never
    }
  }
  await app.register(rateLimit, {
    global: false,
    // Redis when configured, this process's memory while it is down: a limit never silently stops.
    ...(shared ? { store: storeClass(shared) as never } : {}),
    skipOnError: false,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Too many attempts. Wait ${Math.ceil(context.ttl / 1000)} seconds and try again.`,
    }),
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit' })
