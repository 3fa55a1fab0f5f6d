// Redis stopped and started under load, on two gateways sharing it: while it is down, readiness says
// "degraded" and each process counts its limits alone (never not at all); when it is back, the limits are
// shared again. The Redis is this test's own (redis-server on a free loopback port), stopped and started here.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { testApp } from '../helpers/app.js'
import { ownRedis } from '../helpers/redis-server.js'

const redis = await ownRedis(t)
const startRedis = () => redis.start()
const stopRedis = () => redis.stop()

const env = { REDIS_URL: redis.url }
const one = (await testApp(t, env)).app
const two = (await testApp(t, env)).app
const ready = async (app: FastifyInstance) => (await app.inject('/readyz')).json()
/** Activation codes tried from one address at /activate until a 429 (20 a minute per address): how many went through. */
async function triesBeforeLimit(app: FastifyInstance, ip: string, max = 100): Promise<number> {
  for (let i = 0; i < max; i++) {
    const res = await app.inject({ method: 'POST', url: '/activate', remoteAddress: ip, headers: { 'content-type': 'application/json' },
      payload: { activationCode: `AAAA-AAAA-AAAA-AAAA-AAAA-AA${String(i).padStart(2, 'B')}`, username: 'x@example.com', password: 'y' } })
    if (res.statusCode === 429) return i
  }
  return max
}

t.test('shared, then per process while Redis is down, then shared again', async (t) => {
  t.match(await ready(one), { status: 'ready', checks: { redis: 'ok' } })
  // 20 tries a minute per address, counted across both gateways.
  const shared = (await triesBeforeLimit(one, '10.9.0.1', 12)) + (await triesBeforeLimit(two, '10.9.0.1'))
  t.equal(shared, 20, 'one budget for both processes')

  await stopRedis()
  const downOne = await triesBeforeLimit(one, '10.9.0.2')
  t.equal(downOne, 20, 'Redis down: the limit still holds, counted by this process')
  t.match(await ready(one), { status: 'degraded', checks: { redis: /^unreachable: rate limits and failure counts are per process/ } })
  t.equal((await one.inject('/readyz')).statusCode, 200, 'still serving')
  t.equal(await triesBeforeLimit(two, '10.9.0.2'), 20, 'the other process counts its own')

  await startRedis()
  // ioredis reconnects on its own; readiness asks Redis itself.
  let status = ''
  for (let i = 0; i < 100 && status !== 'ready'; i++) {
    status = (await ready(one)).status
    if (status !== 'ready') await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(status, 'ready', 'back')
  await ready(two)
  const again = (await triesBeforeLimit(one, '10.9.0.3', 12)) + (await triesBeforeLimit(two, '10.9.0.3'))
  t.equal(again, 20, 'shared again')
})
