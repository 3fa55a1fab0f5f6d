// Housekeeping of software tokens (src/methods/authenticator-app): every minute, activation codes whose
// time ran out are recorded as expired, and set-ups nobody finished lose their keys. Every process runs it;
// the rows a sweep takes are locked (SKIP LOCKED), so two processes never record one expiry twice.
import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { expireActivationCodes } from '../src/methods/authenticator-app/activation-codes.js'
import { destroyExpiredSetups } from '../src/methods/authenticator-app/setup.js'

const EVERY_MS = 60_000

declare module 'fastify' {
  interface FastifyInstance {
    softwareTokens: {
      /** One sweep now: how many codes expired and set-ups were destroyed. */
      sweep(): Promise<{ codes: number; setups: number }>
    }
  }
}

async function softwareTokensPlugin(app: FastifyInstance): Promise<void> {
  const sweep = async () => {
    const meta = { correlationId: randomUUID(), causationId: null, actor: { type: 'system' as const, id: 'software-tokens' },
      requestId: null, sourceIp: null, userAgent: null, relyingApplication: null }
    const codes = await expireActivationCodes(app.commands, meta)
    const setups = await destroyExpiredSetups(app.db, app.commands.now())
    return { codes, setups }
  }
  app.decorate('softwareTokens', { sweep })
  let timer: NodeJS.Timeout | null = null
  app.addHook('onReady', async () => {
    timer = setInterval(() => {
      sweep().catch((error) => app.log.error({ err: error }, 'software token housekeeping failed'))
    }, EVERY_MS)
    timer.unref()
  })
  app.addHook('preClose', async () => {
    if (timer) clearInterval(timer)
  })
}

export default fp(softwareTokensPlugin, { name: 'software-tokens', dependencies: ['commands'] })
