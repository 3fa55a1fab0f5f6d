// A small relying application on 127.0.0.1 for browser tests (node:http + openid-client): /start sends the
// browser to the gateway (PKCE S256, nonce, state, acr_values), /callback redeems the code, checks the ID
// token (its signature against the gateway's JWKS too) and says who signed in, at which acr, with which amr.
// What /start remembers is kept here by state, not in cookies: the gateway shares the host 127.0.0.1.
import http from 'node:http'
import * as oidc from 'openid-client'
import type { Test } from 'tap'

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** The relying application's one page: no scripts, no styles from elsewhere. */
function pageOf(RP_NAME: string, title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - ${RP_NAME}</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 2rem"><h1>${escapeHtml(title)}</h1>${body}</body></html>`
}

export async function relyingApplication(t: Test, port: number, issuer: URL, clientId: string, secret: string,
  options: { name: string; acr: string }) {
  const RP_NAME = options.name
  const MFA = options.acr
  const rpPage = (title: string, body: string) => pageOf(RP_NAME, title, body)
  const base = `http://127.0.0.1:${port}`
  const redirectUri = `${base}/callback`
  const config = await oidc.discovery(issuer, clientId, { client_secret: secret }, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] })
  // The ID token's signature is checked against the gateway's JWKS too, not only its claims.
  oidc.enableNonRepudiationChecks(config)
  const pending = new Map<string, { verifier: string; nonce: string; acr: string }>()

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', base)
    const html = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' })
      res.end(body)
    }
    if (url.pathname === '/start') {
      const verifier = oidc.randomPKCECodeVerifier()
      const nonce = oidc.randomNonce()
      const state = oidc.randomState()
      const acr = url.searchParams.get('acr') ?? MFA
      pending.set(state, { verifier, nonce, acr })
      const target = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri, scope: 'openid email profile', nonce, state, acr_values: acr,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      })
      res.writeHead(302, { location: target.href })
      res.end()
      return
    }
    if (url.pathname === '/callback') {
      const state = url.searchParams.get('state') ?? ''
      const started = pending.get(state)
      if (!started) return html(400, rpPage('Not signed in', '<p>Unknown or reused state.</p>'))
      pending.delete(state)
      try {
        const tokens = await oidc.authorizationCodeGrant(config, url,
          { pkceCodeVerifier: started.verifier, expectedNonce: started.nonce, expectedState: state, idTokenExpected: true })
        const claims = tokens.claims()!
        const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
        const amr = Array.isArray(claims.amr) ? claims.amr.join(' ') : ''
        return html(200, rpPage('Welcome', `<p id="result">Signed in as ${escapeHtml(userinfo.email)} at ${escapeHtml(claims.acr)} with ${escapeHtml(amr)}</p>`))
      } catch (error) {
        if (error instanceof oidc.AuthorizationResponseError) {
          return html(200, rpPage('Not signed in', `<p id="result">Sign-in failed: error=${escapeHtml(error.error)}</p>
<p>${escapeHtml(error.error_description ?? '')}</p>`))
        }
        return html(500, rpPage('Not signed in', `<p id="result">The sign-in could not be checked: ${escapeHtml((error as Error).message)}</p>`))
      }
    }
    html(404, rpPage('Not found', ''))
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(String(error))
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { base }
}

