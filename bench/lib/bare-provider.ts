// A bare oidc-provider, the reference the flow scenarios are measured against (flows-bare): the same library
// and version as the gateway, configured as src/oidc/provider.ts configures it (PKCE, ES256 ID tokens, the
// acr levels, the claims, signed cookies, the grant made without a consent screen), but with the library's own
// in-memory storage, one static client and accounts in a Map, mounted at /oidc on a plain node:http server
// with the smallest interaction that can sign a user in: a form checking the password (compared in constant
// time, not hashed: the bench signs in once per browser, untimed), then a cookie naming the account, which
// vouches for the user in later interactions as the gateway's session does.
//
// What it leaves out is what the gateway adds around the library: Fastify and its plugins, the gateway's
// session, rate limits, templates, PostgreSQL (clients, accounts, grants, sessions), Redis, the audit events
// of a sign-in. The same simulated browsers (flow-browsers.ts) drive both.
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider, { type Configuration } from 'oidc-provider'
import { firstPartyGrant, LEVELS, PROTOCOL, stepUpPolicy } from '../../src/oidc/provider.js'

export interface BareClient {
  clientId: string
  clientSecret: string
  redirectUri: string
}

export interface BareAccount {
  upn: string
  userId: string
}

export interface BareProvider {
  /** http://127.0.0.1:<port>; the issuer is <base>/oidc, as the gateway's. */
  base: string
  close(): Promise<void>
}

const MOUNT = '/oidc'
/** The cookie naming the signed-in account (the bare stand-in for the gateway's session). */
const SIGNED_IN = 'bare_signed_in'

function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))))
    req.on('error', reject)
  })
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return value.join('=')
  }
  return undefined
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export async function startBareProvider(client: BareClient, accounts: BareAccount[], password: string): Promise<BareProvider> {
  const byUpn = new Map(accounts.map((a) => [a.upn, a]))
  const byId = new Map(accounts.map((a) => [a.userId, a]))
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const policy = stepUpPolicy()
  const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })
  const configuration: Configuration = {
    clients: [{
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: [client.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [{ ...signingKey, kid: 'bare', use: 'sig', alg: 'ES256' }] as never[] },
    cookies: { keys: [randomBytes(32).toString('base64url')], long: { signed: true }, short: { signed: true } },
    ...PROTOCOL,
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
    ttl: { AuthorizationCode: 60, AccessToken: 3600, IdToken: 3600, RefreshToken: 14 * 24 * 3600, Interaction: 30 * 60, Session: 8 * 3600, Grant: 14 * 24 * 3600 },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy },
    async findAccount(_ctx, sub) {
      const account = byId.get(sub)
      if (!account) return undefined
      return {
        accountId: account.userId,
        async claims() {
          return { sub: account.userId, email: account.upn, email_verified: false, name: account.upn, preferred_username: account.upn }
        },
      }
    },
    // As the gateway: registered applications get what they ask for, without a consent screen.
    loadExistingGrant: firstPartyGrant,
  }
  const provider = new Provider(`${base}${MOUNT}`, configuration)
  const callback = provider.callback()

  async function finish(req: IncomingMessage, res: ServerResponse, userId: string) {
    await provider.interactionFinished(req, res, {
      login: { accountId: userId, acr: LEVELS.pwd, amr: ['pwd'], ts: Math.floor(Date.now() / 1000), remember: true },
    }, { mergeWithLastSubmission: false })
  }

  async function interaction(req: IncomingMessage, res: ServerResponse, path: string) {
    const details = await provider.interactionDetails(req, res)
    if (req.method === 'GET' && path === `/interaction/${details.uid}`) {
      const vouched = byId.get(decodeURIComponent(cookie(req, SIGNED_IN) ?? ''))
      if (vouched) return finish(req, res, vouched.userId)
      res.setHeader('content-type', 'text/html; charset=utf-8')
      res.end(`<!doctype html><title>Sign in</title><h1>Sign in</h1><form method="post" action="/interaction/${details.uid}/login">
        <input name="upn"><input name="password" type="password"><button>Sign in</button></form>`)
      return
    }
    if (req.method === 'POST' && path === `/interaction/${details.uid}/login`) {
      const form = await readBody(req)
      const account = byUpn.get(form.get('upn') ?? '')
      if (!account || !sameSecret(form.get('password') ?? '', password)) {
        res.statusCode = 400
        res.end('wrong account or password')
        return
      }
      res.setHeader('set-cookie', `${SIGNED_IN}=${encodeURIComponent(account.userId)}; Path=/; HttpOnly; SameSite=Lax`)
      return finish(req, res, account.userId)
    }
    res.statusCode = 404
    res.end()
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/'
    if (url === MOUNT || url.startsWith(`${MOUNT}/`) || url.startsWith(`${MOUNT}?`)) {
      // As a framework mounting the provider does: the provider reads its mount path from originalUrl.
      ;(req as IncomingMessage & { originalUrl?: string }).originalUrl = url
      req.url = url.slice(MOUNT.length) || '/'
      callback(req, res)
      return
    }
    const path = url.split('?')[0]!
    if (path.startsWith('/interaction/')) {
      interaction(req, res, path).catch((error: Error) => {
        if (!res.headersSent) res.statusCode = error.name === 'SessionNotFound' ? 400 : 500
        res.end(error.message)
      })
      return
    }
    res.statusCode = 404
    res.end()
  })

  return {
    base,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
