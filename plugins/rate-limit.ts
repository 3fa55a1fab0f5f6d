// Rate limits (@fastify/rate-limit), shared by every gateway process through Redis when REDIS_URL is
// set, per process otherwise. Routes opt in with app.rateLimit({...}) in their preHandler.
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'

async function rateLimitPlugin(app: FastifyInstance): Promise<void> {
  let redis: Redis | null = null
  if (app.config.redisUrl) {
    redis = new Redis(app.config.redisUrl, { connectTimeout: 2000, maxRetriesPerRequest: 1, lazyConnect: false })
    redis.on('error', (error) => app.log.warn({ err: error }, 'redis for rate limits is unreachable'))
    app.addHook('onClose', async () => {
      await redis?.quit().catch(() => {})
    })
  }
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
