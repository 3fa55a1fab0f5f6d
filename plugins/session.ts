// Sessions in an encrypted, authenticated cookie (@fastify/secure-session). The key comes from
// TESSERA_SESSION_KEY (32 bytes, base64; every gateway process must share it) or, by default, a key
// generated once into the data directory.
import { createHmac, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import fp from 'fastify-plugin'
import secureSession from '@fastify/secure-session'
import type { FastifyInstance } from 'fastify'
import { gatewaySessionLive, pruneGatewaySessions } from '../src/read-models/sessions.js'

// What a session holds; times are milliseconds since the epoch, on the command clock.
declare module '@fastify/secure-session' {
  interface SessionData {
    /** The gateway_sessions row that must be live for this cookie to count (read-models/sessions.ts). */
    sid: string
    userId: string
    upn: string
    displayName: string
    /** When the password (or the upstream provider) last vouched for the user. */
    authenticatedAt: number
    /** When a code from one of the user's tokens (or their first token's activation, or a temporary code) was last checked. */
    verifiedAt: number
    /**
     * When a code from a token that was already active was last checked: what admin and auditor pages
     * ask for. Activating a first token or a temporary code does not count: a password and a token
     * from the inventory, or a code an admin handed out, must not open them.
     */
    tokenVerifiedAt: number
    /** Adding a phone or an e-mail address, between its steps (methods/sent-code/routes.ts). */
    enrollSent: { kind: 'sms' | 'email'; serial: string; at: number }
    /** Setting up an authenticator app on Security info: the set-up's handle (methods/authenticator-app). */
    enrollApp: { handle: string; at: number }
    /** Redeeming an activation code at /activate: the set-up it made, for the app's first code (no session). */
    activation: { handle: string; userId: string; at: number }
    /** The hardware token flow between its steps. */
    enroll: { serial: string; name?: string; claimedAt: number }
    /** Where to go after signing in or entering a code. */
    returnTo: string
    /** The OpenID interaction in which the password was entered (prompt=login, max_age). */
    interactionPassword: string
    /** A method activated in the middle of an OpenID sign-in (its first code proved possession). */
    possession: { uid: string; serial: string; at: number }
    /** Said once on the next page: what changed on the account since the user last signed in, or a sign-out. */
    notices: string[]
    /** A right temporary password, waiting for the user's new one (routes/password.ts); no session yet. */
    passwordChange: import('../src/routes/sign-in.js').PendingPasswordChange
  }
}

export const SESSION_HOURS = 8
export const SESSION_COOKIE = 'tessera_session'

function sessionKey(app: FastifyInstance): Buffer {
  const configured = app.config.sessionKey
  if (configured) {
    const key = Buffer.from(configured, 'base64')
    if (key.length !== 32) throw new Error('TESSERA_SESSION_KEY must be 32 bytes in base64 (openssl rand -base64 32)')
    return key
  }
  const file = path.join(app.config.dataDir, 'session.key')
  if (!existsSync(file)) {
    mkdirSync(app.config.dataDir, { recursive: true })
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' })
    app.log.warn(`generated a session key in ${file}; set TESSERA_SESSION_KEY when running several gateway processes`)
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Derives a key for another purpose (e.g. the OpenID provider's cookies) from the session key. */
    deriveKey(purpose: string): string
  }
}

async function sessionPlugin(app: FastifyInstance): Promise<void> {
  const key = sessionKey(app)
  app.decorate('deriveKey', (purpose: string) => createHmac('sha256', key).update(purpose).digest('base64url'))
  await app.register(secureSession, {
    key,
    cookieName: SESSION_COOKIE,
    expiry: SESSION_HOURS * 3600,
    cookie: {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: app.config.publicUrl.startsWith('https://'),
    },
  })
  // A signed-in cookie counts only while its server-side session is live: not after a sign-out (from any
  // copy of the cookie, on any process), nor past its absolute lifetime, however often it was renewed.
  app.addHook('onRequest', async (request) => {
    // Static assets read no session, nor do the OpenID provider's endpoints (it keeps its own; signing out
    // there reads the gateway's cookie itself): no query for them.
    if (request.url.startsWith('/assets/') || request.url === '/favicon.ico' || request.url.startsWith('/oidc/')) return
    const s = request.session
    const userId = s.get('userId')
    if (!userId) return
    const sid = s.get('sid')
    if (sid && (await gatewaySessionLive(app.db, sid, userId, app.commands.now()))) return
    s.regenerate()
    s.delete()
  })
  const prune = setInterval(() => {
    pruneGatewaySessions(app.db, app.commands.now()).catch((error) => app.log.warn({ err: error }, 'pruning ended sessions failed'))
  }, 60 * 60 * 1000)
  prune.unref()
  app.addHook('onClose', async () => clearInterval(prune))
}

export default fp(sessionPlugin, { name: 'session', dependencies: ['db', 'commands'] })
