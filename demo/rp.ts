// A small relying application, as a real one would be written, to try Tessera end to end: it signs the
// user in with OpenID Connect (authorization code flow with PKCE, through @fastify/oauth2), asks for
// step-up (acr_values urn:tessera:loa:mfa), and shows the ID token's claims, verified against the
// gateway's JWKS (jose).
//
//   npx tessera clients add demo --redirect-uri http://localhost:8080/callback --name "Demo app"
//   DEMO_CLIENT_SECRET=<the secret it printed> npm run demo-rp     # then open http://localhost:8080
//
// Environment: DEMO_CLIENT_ID (demo), DEMO_CLIENT_SECRET, TESSERA_URL (http://127.0.0.1:3000), DEMO_PORT (8080).
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import oauth2, { type OAuth2Namespace } from '@fastify/oauth2'
import { createRemoteJWKSet, jwtVerify } from 'jose'

export const LEVELS = { pwd: 'urn:tessera:loa:pwd', mfa: 'urn:tessera:loa:mfa' } as const

export interface DemoOptions {
  /** The gateway's public URL (its issuer is this + /oidc). */
  gateway: string
  clientId: string
  clientSecret: string
  /** Where this application is reached, for its callback. */
  baseUrl: string
}

declare module 'fastify' {
  interface FastifyInstance {
    tessera: OAuth2Namespace
  }
}

const escape = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

function html(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} - Demo app</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
a.button{display:inline-block;padding:.5rem 1rem;border:1px solid #0f6cbd;border-radius:3px;margin:.25rem .5rem .25rem 0;text-decoration:none}
a.primary{background:#0f6cbd;color:#fff}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
code{word-break:break-all}</style></head><body>${body}</body></html>`
}

export async function createDemoRp(options: DemoOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  const issuer = `${options.gateway}/oidc`
  await app.register(oauth2, {
    name: 'tessera',
    scope: ['openid', 'profile', 'email'],
    credentials: { client: { id: options.clientId, secret: options.clientSecret } },
    discovery: { issuer },
    callbackUri: `${options.baseUrl}/callback`,
    pkce: 'S256',
    cookie: { secure: options.baseUrl.startsWith('https://'), path: '/' },
  })
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`))

  app.get('/', async (_request, reply) => reply.type('text/html').send(html('Demo app', `<h1>Demo app</h1>
    <p>This application signs you in with Tessera and shows what the ID token says.</p>
    <p><a class="button primary" href="/login">Sign in</a> <a class="button" href="/login?level=mfa">Sign in with a code (step-up)</a></p>`)))

  // Sign-in and step-up: the same flow, with acr_values asking for the level.
  app.get<{ Querystring: { level?: string } }>('/login', async (request, reply) => {
    const level = request.query.level === 'mfa' ? LEVELS.mfa : LEVELS.pwd
    const url = new URL(await app.tessera.generateAuthorizationUri(request, reply))
    url.searchParams.set('acr_values', level)
    return reply.redirect(url.toString(), 302)
  })

  app.get<{ Querystring: { error?: string; error_description?: string } }>('/callback', async (request, reply) => {
    if (request.query.error) {
      return reply.code(400).type('text/html').send(html('Not signed in', `<h1>Not signed in</h1><p>Tessera answered: ${escape(request.query.error)}${request.query.error_description ? ` (${escape(request.query.error_description)})` : ''}.</p><p><a class="button" href="/">Back</a></p>`))
    }
    const { token } = await app.tessera.getAccessTokenFromAuthorizationCodeFlow(request, reply)
    const idToken = String(token.id_token ?? '')
    const { payload } = await jwtVerify(idToken, jwks, { issuer, audience: options.clientId })
    const rows = Object.entries(payload).map(([k, v]) => `<tr><th scope="row">${escape(k)}</th><td><code>${escape(JSON.stringify(v))}</code></td></tr>`).join('')
    return reply.type('text/html').send(html('Signed in', `<h1>Signed in</h1>
      <p>Level reached: <strong>${escape(payload.acr)}</strong>; methods (amr): <strong>${escape((payload.amr as string[] | undefined)?.join(', '))}</strong>.</p>
      <table><caption>The ID token's claims, its signature checked against the gateway's keys</caption>${rows}</table>
      <p><a class="button primary" href="/login?level=mfa">Step up with a code</a> <a class="button" href="/">Start again</a></p>`))
  })
  return app
}

// `npm run demo-rp`: the demo on DEMO_PORT against TESSERA_URL.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const port = Number(process.env.DEMO_PORT ?? 8080)
  const secret = process.env.DEMO_CLIENT_SECRET
  if (!secret) {
    console.error('DEMO_CLIENT_SECRET is not set: register the demo first with\n  npx tessera clients add demo --redirect-uri http://localhost:8080/callback --name "Demo app"\nand pass the secret it prints.')
    process.exit(2)
  }
  const app = await createDemoRp({
    gateway: process.env.TESSERA_URL ?? 'http://127.0.0.1:3000', clientId: process.env.DEMO_CLIENT_ID ?? 'demo', clientSecret: secret,
    baseUrl: `http://localhost:${port}`,
  })
  await app.listen({ port, host: 'localhost' })
  console.log(`demo relying application on http://localhost:${port}`)
}
