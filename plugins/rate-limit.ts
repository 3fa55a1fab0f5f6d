// Rate limits (@fastify/rate-limit), shared by every gateway process through Redis when REDIS_URL is
// set, per process otherwise. Routes opt in with app.limit({...}) in their preHandler (one or several).
// Also a failure counter (app.failures): counts only what failed (a wrong password from an address),
// in fixed windows, in the same Redis or in memory.
import fp from 'fastify-plugin'
import rateLimit, { type CreateRateLimitOptions } from '@fastify/rate-limit'
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

/** A counter that cannot reach Redis counts nothing and blocks nobody, like the rate limits (skipOnError). */
function forgiving(counter: FailureCounter, warn: (error: unknown) => void): FailureCounter {
  return {
    add: (key, windowMs) => counter.add(key, windowMs).catch((error) => (warn(error), { count: 0, resetInMs: 0 })),
    get: (key) => counter.get(key).catch((error) => (warn(error), { count: 0, resetInMs: 0 })),
    forgive: (key) => counter.forgive(key).catch((error) => warn(error)),
    clear: (key) => counter.clear(key).catch((error) => warn(error)),
  }
}

declare module 'fastify' {
  interface FastifyInstance {
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
  if (app.config.redisUrl) {
    redis = new Redis(app.config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, lazyConnect: false })
    redis.on('error', (error) => app.log.warn({ err: error }, 'redis for rate limits is unreachable'))
    app.addHook('onClose', async () => {
      await redis?.quit().catch(() => {})
    })
  }
  app.decorate('failures', redis
    ? forgiving(redisFailureCounter(redis), (error) => app.log.warn({ err: error }, 'redis for failure counts is unreachable'))
    : memoryFailureCounter())
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
  await app.register(rateLimit, {
    global: false,
    redis: redis ?? undefined,
    nameSpace: 'tessera-rl:',
    // A limiter that cannot reach Redis lets requests through rather than locking everyone out.
    skipOnError: true,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Too many attempts. Wait ${Math.ceil(context.ttl / 1000)} seconds and try again.`,
    }),
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit' })
