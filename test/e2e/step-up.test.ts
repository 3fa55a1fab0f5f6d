// Step-up sign-in for a relying application in a real headless Chromium: a small relying application
// (node:http + openid-client) sends the browser to the gateway with acr_values urn:tessera:loa:mfa, the
// person signs in and enters a code from the token (oathtool's, never our verifier's), and the
// application shows who signed in and how. Driven only by what a person sees: labels, headings, buttons.
// Screenshots of each step go to .tessera-test/screens/step-up/ (gitignored), to be looked at.
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import * as oidc from 'openid-client'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'

const MFA = 'urn:tessera:loa:mfa'
const SERIAL = '8659623756140'
// A 20-byte seed: hex for oathtool, Base32 for the Entra file.
const SEED_HEX = '3132333435363738393031323334353637383930'
const SEED_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'
const PASSWORD = 'correct horse battery'
const RP_NAME = 'Payroll'
const ERROR_RED = 'rgb(164, 38, 44)' // --error in public/tessera.css

/** Screenshots of this file's steps go to .tessera-test/screens/step-up/. */
const screenshot = (page: Page, name: string) => screenshotAt(page, `step-up/${name}`)

const missing = browserMissing()
if (missing) {
  t.plan(0, missing)
} else {
  // One parent test, so tap's root does not end on its own while Chromium starts.
  t.test('step-up sign-in for a relying application in headless Chromium', browserTests)
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** The relying application's one page: no scripts, no styles from elsewhere. */
function rpPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - ${RP_NAME}</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; margin: 2rem"><h1>${escapeHtml(title)}</h1>${body}</body></html>`
}

/**
 * A fake relying application on 127.0.0.1: /start sends the browser to the gateway (PKCE S256, nonce,
 * state, acr_values), /callback redeems the code, checks the ID token and says who signed in.
 * What /start remembers is kept here by state, not in cookies: the gateway shares the host 127.0.0.1.
 */
async function relyingApplication(t: Test, port: number, issuer: URL, clientId: string, secret: string) {
  const base = `http://127.0.0.1:${port}`
  const redirectUri = `${base}/callback`
  const config = await oidc.discovery(issuer, clientId, { client_secret: secret }, oidc.ClientSecretBasic(secret), { execute: [oidc.allowInsecureRequests] })
  // The ID token's signature is checked against the gateway's JWKS too, not only its claims.
  oidc.enableNonRepudiationChecks(config)
  const pending = new Map<string, { verifier: string; nonce: string; acr: string }>()
  const callbacks: URL[] = []

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
      callbacks.push(url)
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
  return { base, redirectUri, callbacks }
}

async function browserTests(t: Test) {
  const started = Date.now()
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const { app, clock } = await testApp(t, { PORT: String(port), PUBLIC_URL: base })
  await app.listen({ port, host: '127.0.0.1' })
  // One fixed instant, the real one, so oathtool's code for it is the one the gateway expects.
  const NOW = Math.floor(Date.now() / 1000)
  clock.now = new Date(NOW * 1000)

  // A code is accepted once: each verification after the first moves the clock one step on and
  // uses that step's code, as a token would show it 30 s later.
  let step = 0
  function currentCode(): string {
    return totpAt(SEED_HEX, NOW + step * 30)
  }
  function nextCode(): string {
    step++
    clock.now = new Date((NOW + step * 30) * 1000)
    return currentCode()
  }

  const alice = await addUser(app, 'alice@example.com', PASSWORD, 'Alice Example')
  const report = await importEntra(app, [`alice@example.com,${SERIAL},${SEED_B32},30,Token2,C202`])
  t.same(report.rejected, [], 'the inventory imported')
  await activateToken(app.commands, { serial: SERIAL, userId: alice.userId, name: 'Key fob', code: currentCode() }, metadata())

  // The relying application's redirect URI holds its port: the port is chosen before registering it.
  const rpPort = await freePort()
  const client = await registerClient(app.commands,
    { clientId: 'payroll', name: RP_NAME, redirectUris: [`http://127.0.0.1:${rpPort}/callback`], public: false }, metadata())
  const rp = await relyingApplication(t, rpPort, new URL(`${base}/oidc`), 'payroll', client.secret!)

  await clearScreens('step-up')
  const browser = await launchBrowser(t)

  async function newContext(t: Test, b: Browser): Promise<BrowserContext> {
    // The gateway's pages and the relying application's need no JavaScript.
    const context = await b.newContext({ viewport: { width: 1024, height: 720 }, javaScriptEnabled: false })
    t.teardown(() => context.close())
    // Nothing may reach outside the gateway and the relying application.
    await context.route((url) => !url.href.startsWith(`${base}/`) && !url.href.startsWith(`${rp.base}/`), (route) => route.abort())
    return context
  }

  async function heading(page: Page, name: string) {
    return page.getByRole('heading', { name, level: 1, exact: true }).isVisible()
  }

  async function result(page: Page) {
    return (await page.locator('#result').innerText()).trim()
  }

  async function start(page: Page) {
    await page.goto(`${rp.base}/start`)
    await page.waitForLoadState()
  }

  async function signIn(t: Test, page: Page, shot?: string) {
    t.ok(await heading(page, 'Sign in'), 'the gateway asks to sign in')
    t.ok(await page.getByText(`to continue to ${RP_NAME}`).isVisible(), `naming ${RP_NAME}`)
    await page.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    if (shot) await screenshot(page, shot)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForLoadState()
  }

  async function onCodePage(t: Test, page: Page) {
    t.ok(await heading(page, 'Enter code'), 'the Enter code page')
    t.ok(await page.getByText('Enter the code displayed on your authentication token').isVisible(), 'asking for the code on the token')
    t.ok(await page.getByText(`Key fob (serial ${SERIAL})`).isVisible(), 'naming the token')
  }

  async function backAtRp(page: Page) {
    await page.waitForURL(`${rp.base}/callback?**`)
  }

  await t.test('password, then Enter code, then back at the application signed in at mfa', async (t) => {
    const context = await newContext(t, browser)
    const page = await context.newPage()
    await start(page)
    t.equal(new URL(page.url()).origin, base, 'the application sent the browser to the gateway')
    await screenshot(page, '01-sign-in')
    await signIn(t, page, '02-sign-in-filled')
    await onCodePage(t, page)
    t.notOk(await page.getByLabel('Password', { exact: true }).count(), 'no password field on the code page')
    await screenshot(page, '03-enter-code')
    const code = nextCode() // not the code that activated the token: that one was used
    t.match(code, /^\d{6}$/, 'oathtool gave a code')
    await page.getByLabel('Code', { exact: true }).fill(code)
    await screenshot(page, '04-enter-code-filled')
    await page.getByRole('button', { name: 'Verify' }).click()
    await backAtRp(page)
    const text = await result(page)
    t.match(text, /^Signed in as alice@example\.com at urn:tessera:loa:mfa with /, text)
    const amr = text.replace(/^.* with /, '').split(' ')
    t.ok(amr.includes('otp') && amr.includes('hwk'), `amr has otp and hwk (${amr.join(' ')})`)
    await screenshot(page, '05-rp-signed-in')

    await t.test('a second sign-in in the same browser asks only for the code', async (t) => {
      await start(page)
      const url = page.url()
      await screenshot(page, '06-second-run')
      t.notOk(await heading(page, 'Sign in'), 'no password asked again')
      t.comment(`second run landed on ${url}`)
    })
  })

  t.comment(`browser tests took ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
