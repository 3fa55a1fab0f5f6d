// The OpenID provider, mounted at /oidc through @fastify/middie (issuer: PUBLIC_URL/oidc).
// It is created on first use: its signing keys live in the database, and a gateway whose database is
// not ready yet must still start and say so on /readyz.
import fp from 'fastify-plugin'
import middie from '@fastify/middie'
import type Provider from 'oidc-provider'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type { FastifyInstance } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Redis } from 'ioredis'
import { pruneExpired } from '../src/oidc/adapter.js'
import { createProvider } from '../src/oidc/provider.js'
import { loadSigningKeys } from '../src/oidc/signing-keys.js'
import { SESSION_COOKIE } from './session.js'
import { endGatewaySession } from '../src/read-models/sessions.js'

declare module 'fastify' {
  interface FastifyInstance {
    oidcProvider(): Promise<Provider>
  }
}

export const OIDC_PATH = '/oidc'

async function oidcPlugin(app: FastifyInstance): Promise<void> {
  // With REDIS_URL, interactions, codes, sessions, grants and access tokens live in Redis
  // (src/oidc/redis-adapter.ts), on a connection of their own: commands of concurrent sign-ins go out together, and fail fast when it is down.
  const redis = app.config.redisUrl
    ? new Redis(app.config.redisUrl, { enableAutoPipelining: true, connectTimeout: 2000, maxRetriesPerRequest: 1, commandTimeout: 1000, enableOfflineQueue: false })
    : undefined
  redis?.on('error', () => {})
  app.addHook('onClose', async () => {
    redis?.disconnect()
  })
  let ready: Promise<{ provider: Provider; callback: (req: IncomingMessage, res: ServerResponse) => void }> | null = null
  const load = () => {
    ready ??= (async () => {
      const provider = createProvider({
        issuer: `${app.config.publicUrl}${OIDC_PATH}`,
        db: app.db,
        signingKeys: await loadSigningKeys(app.db, app.commands.vault),
        cookieKeys: [app.deriveKey('oidc cookies')],
        secureCookies: app.config.publicUrl.startsWith('https://'),
        onError: (details) => app.log.info(details, 'sign-in error page shown'),
        redis,
      })
      provider.proxy = app.config.publicUrl.startsWith('https://')
      provider.on('server_error', (_ctx: unknown, error: Error) => app.log.error({ err: error }, 'OpenID provider error'))
      // Signing out of the provider (RP-initiated logout) signs out of the gateway too: its own session
      // would otherwise sign the user straight back in.
      // The gateway's session ends server-side too, so a copy of its cookie stops working as well.
      provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
        const raw = ctx.cookies.get(SESSION_COOKIE, { signed: false })
        const sid = raw ? app.decodeSecureSession(decodeURIComponent(raw))?.get('sid') : undefined
        if (sid) endGatewaySession(app.db, sid, app.commands.now()).catch((error) => app.log.error({ err: error }, 'ending the gateway session failed'))
        ctx.cookies.set(SESSION_COOKIE, null, { path: '/', signed: false })
      })
      return { provider, callback: provider.callback() }
    })().catch((error) => {
      ready = null
      throw error
    })
    return ready
  }
  app.decorate('oidcProvider', async () => (await load()).provider)

  await app.register(middie)
  app.use(OIDC_PATH, (req: IncomingMessage, res: ServerResponse) => {
    load().then(({ callback }) => callback(req, res)).catch((error) => {
      app.log.error({ err: error }, 'the OpenID provider is not available')
      if (res.headersSent) return void res.end()
      res.statusCode = 503
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'The sign-in service is starting or its database is unavailable.' }))
    })
  })

  const prune = setInterval(() => {
    pruneExpired(app.db).catch((error) => app.log.warn({ err: error }, 'pruning expired OpenID data failed'))
  }, 5 * 60 * 1000)
  prune.unref()
  app.addHook('onClose', async () => clearInterval(prune))
}

export default fp(oidcPlugin, { name: 'oidc', dependencies: ['db', 'commands', 'session'] })
