// Step-up sign-in for a relying application in a real headless Chromium: a small relying application
// (node:http + openid-client) sends the browser to the gateway with acr_values urn:tessera:loa:mfa, the
// person signs in and enters a code from the token (oathtool's, never our verifier's), and the
// application shows who signed in and how. Driven only by what a person sees: labels, headings, buttons,
// with JavaScript off. Screenshots of each step go to .tessera-test/screens/step-up/ (gitignored).
// Everything runs under the gateway's own Content-Security-Policy: its form-action must allow the
// redirect back to the application after Sign in, Verify and Cancel (the last test checks just that).
import t, { type Test } from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { assertFieldError, browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { freePort } from '../helpers/net.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'
import { relyingApplication as startRelyingApplication } from '../helpers/relying-app.js'

const MFA = 'urn:tessera:loa:mfa'
const SERIAL = '8659623756140'
// A 20-byte seed: hex for oathtool, Base32 for the Entra file.
const PASSWORD = 'correct horse battery'
const RP_NAME = 'Payroll'

/** Screenshots of this file's steps go to .tessera-test/screens/step-up/. */
const screenshot = (page: Page, name: string) => screenshotAt(page, `step-up/${name}`)

const missing = browserMissing()
if (missing) {
  t.plan(0, missing)
} else {
  // One parent test, so tap's root does not end on its own while Chromium starts.
  t.test('step-up sign-in for a relying application in headless Chromium', browserTests)
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
  const rp = await startRelyingApplication(t, rpPort, new URL(`${base}/oidc`), 'payroll', client.secret!, { name: RP_NAME, acr: MFA })

  await clearScreens('step-up')
  const browser = await launchBrowser(t)

  /** A browser context with JavaScript off (none of these pages needs it), under the gateway's CSP. */
  async function newContext(t: Test, options: { bypassCSP: false } = { bypassCSP: false }): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1024, height: 720 }, javaScriptEnabled: false, bypassCSP: options.bypassCSP })
    t.teardown(() => context.close())
    // Nothing may reach outside the gateway and the relying application.
    await context.route((url) => !url.href.startsWith(`${base}/`) && !url.href.startsWith(`${rp.base}/`), (route) => route.abort())
    return context
  }

  async function heading(page: Page, name: string) {
    return page.getByRole('heading', { name, level: 1, exact: true }).isVisible()
  }

  /** What the relying application says at its callback. */
  async function result(page: Page) {
    return (await page.locator('#result').innerText()).trim()
  }

  /** Opens the application's /start; it sends the browser to the gateway. */
  async function start(page: Page) {
    await page.goto(`${rp.base}/start`)
    await page.waitForLoadState()
  }

  async function signIn(t: Test, page: Page, shot?: string) {
    t.equal(new URL(page.url()).origin, base, 'the application sent the browser to the gateway')
    t.ok(await heading(page, 'Sign in'), 'the gateway asks to sign in')
    t.ok(await page.getByText(`to continue to ${RP_NAME}`).isVisible(), `to continue to ${RP_NAME}`)
    if (shot) await screenshot(page, shot)
    await page.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    if (shot) await screenshot(page, `${shot}-filled`)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForLoadState()
  }

  async function onCodePage(t: Test, page: Page) {
    t.match(new URL(page.url()).pathname, /^\/interaction\/[^/]+$/, 'on the gateway')
    t.ok(await heading(page, 'Enter code'), 'the Enter code page')
    t.ok(await page.getByText('Enter the code displayed on your authentication token').isVisible(), 'asking for the code on the token')
    t.ok(await page.getByText(`${RP_NAME} asks for a code to confirm it's you`).isVisible(), `naming ${RP_NAME}`)
    t.ok(await page.getByText(`Key fob (serial ${SERIAL})`).isVisible(), 'naming the token')
    t.equal(await page.getByLabel('Password', { exact: true }).count(), 0, 'no password field')
  }

  async function verify(t: Test, page: Page, code: string, shot?: string) {
    t.match(code, /^\d{6}$/, 'oathtool gave a code')
    await page.getByLabel('Code', { exact: true }).fill(code)
    if (shot) await screenshot(page, shot)
    await page.getByRole('button', { name: 'Verify' }).click()
  }

  async function backAtApplication(t: Test, page: Page, level = MFA) {
    await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
    const text = await result(page)
    t.equal(text.replace(/ with .*$/, ''), `Signed in as alice@example.com at ${level}`, `the application says: ${text}`)
    const amr = text.replace(/^.* with /, '').split(' ')
    if (level === MFA) t.ok(amr.includes('otp') && amr.includes('hwk'), `amr has otp and hwk (${amr.join(' ')})`)
    else t.same(amr, ['pwd'], 'amr is pwd')
  }

  /** The documents the browser showed (navigations answered 200), to tell which pages a person saw. */
  function shownPages(page: Page): string[] {
    const shown: string[] = []
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.request().frame() === page.mainFrame() && r.status() === 200) {
        const u = new URL(r.url())
        shown.push(`${u.origin === base ? 'gateway' : 'application'} ${u.pathname.replace(/^\/interaction\/[^/]+/, '/interaction/:uid')}`)
      }
    })
    return shown
  }

  await t.test('password, then Enter code, then back at the application at mfa; again: straight back (single sign-on)', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    const shown = shownPages(page)
    await start(page)
    await signIn(t, page, '01-sign-in')
    await onCodePage(t, page)
    await screenshot(page, '02-enter-code')
    // Not the code that activated the token: that one was used. The next step's code, 30 s later.
    await verify(t, page, nextCode(), '03-enter-code-filled')
    await backAtApplication(t, page)
    await screenshot(page, '04-application-signed-in')
    t.same(shown, ['gateway /interaction/:uid', 'gateway /interaction/:uid', 'application /callback'], 'Sign in, Enter code, the application')

    // The gateway's session is at mfa already: asked for mfa again, it answers without a page.
    shown.length = 0
    await start(page)
    await backAtApplication(t, page)
    t.same(shown, ['application /callback'], 'no gateway page the second time: neither Sign in nor Enter code')
  })

  await t.test('signed in at pwd, then asked for mfa: only Enter code (step-up, no password again)', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await page.goto(`${rp.base}/start?acr=${encodeURIComponent('urn:tessera:loa:pwd')}`)
    await signIn(t, page)
    await backAtApplication(t, page, 'urn:tessera:loa:pwd')
    await screenshot(page, '05-application-at-pwd')

    const shown = shownPages(page)
    await start(page)
    t.notOk(await heading(page, 'Sign in'), 'no Sign in page')
    await onCodePage(t, page)
    await screenshot(page, '06-step-up-enter-code')
    await verify(t, page, nextCode())
    await backAtApplication(t, page)
    t.same(shown, ['gateway /interaction/:uid', 'application /callback'], 'only Enter code, then the application')
  })

  await t.test('signed in to Security info, then asked for mfa by the application: only Enter code', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await page.goto(`${base}/login`)
    t.ok(await heading(page, 'Sign in'), 'the gateway\'s own Sign in page')
    await page.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL(`${base}/security-info`)
    t.ok(await heading(page, 'Security info'), 'on Security info')

    const shown = shownPages(page)
    await start(page)
    await onCodePage(t, page)
    await verify(t, page, nextCode())
    await backAtApplication(t, page)
    t.same(shown, ['gateway /interaction/:uid', 'application /callback'], 'only Enter code, then the application')
  })

  await t.test("a wrong code: \"That code didn't work\" under the emptied field, then the right code goes through", async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await start(page)
    await signIn(t, page)
    await onCodePage(t, page)
    const right = nextCode()
    // Six digits that are no code of this step or the ones either side of it.
    const near = [-1, 0, 1].map((d) => totpAt(SEED_HEX, NOW + (step + d) * 30))
    let wrong = right
    while (near.includes(wrong)) wrong = String((Number(wrong) + 1) % 1_000_000).padStart(6, '0')
    await verify(t, page, wrong)
    await page.waitForLoadState()
    t.match(new URL(page.url()).pathname, /^\/interaction\/[^/]+\/code$/, 'still on the gateway')
    t.ok(await heading(page, 'Enter code'), 'still on Enter code')
    const field = page.getByLabel('Code', { exact: true })
    const error = page.getByRole('alert').filter({ hasText: "That code didn't work" })
    t.ok(await error.isVisible(), "That code didn't work, shown as an alert")
    t.equal(await field.inputValue(), '', 'the field is empty')
    await assertFieldError(t, field, error)
    await screenshot(page, '07-wrong-code')
    await page.setViewportSize({ width: 390, height: 800 })
    await screenshot(page, '08-wrong-code-narrow')
    await page.setViewportSize({ width: 1024, height: 720 })

    await verify(t, page, right)
    await backAtApplication(t, page)
  })

  await t.test('Cancel on Enter code: back at the application with error=access_denied', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await start(page)
    await signIn(t, page)
    await onCodePage(t, page)
    await page.getByRole('button', { name: 'Cancel' }).click()
    await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
    const callback = new URL(page.url())
    t.equal(callback.searchParams.get('error'), 'access_denied', 'the callback carries error=access_denied')
    t.notOk(callback.searchParams.has('code'), 'and no code')
    t.ok(await heading(page, 'Not signed in'), 'the application says it is not signed in')
    t.equal(await result(page), 'Sign-in failed: error=access_denied', 'and why')
    t.ok(await page.getByText('The user cancelled the sign-in.').isVisible(), "with the gateway's description")
    await screenshot(page, '09-cancelled')
  })

  await t.test('Cancel on Sign in: back at the application with error=access_denied', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await start(page)
    t.ok(await heading(page, 'Sign in'), 'the gateway asks to sign in')
    await page.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await page.getByRole('button', { name: 'Cancel' }).click()
    await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
    t.equal(await result(page), 'Sign-in failed: error=access_denied', 'the application says why')
  })

  await t.test('keyboard: Enter in Password signs in and Enter in Code verifies, neither cancels', async (t) => {
    const context = await newContext(t, { bypassCSP: false })
    const page = await context.newPage()
    await start(page)
    t.ok(await heading(page, 'Sign in'), 'the gateway asks to sign in')
    await page.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await page.getByLabel('Password', { exact: true }).press('Enter')
    await page.waitForLoadState()
    t.notOk(page.url().startsWith(rp.base), `Enter in Password did not cancel (${new URL(page.url()).search || new URL(page.url()).pathname})`)
    if (page.url().startsWith(rp.base)) return
    await onCodePage(t, page)
    await page.getByLabel('Code', { exact: true }).fill(nextCode())
    await page.getByLabel('Code', { exact: true }).press('Enter')
    await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
    t.notOk(new URL(page.url()).searchParams.has('error'), `Enter in Code did not cancel (${new URL(page.url()).searchParams.get('error') ?? 'no error'})`)
    await backAtApplication(t, page)
  })

  // Chromium applies the CSP's form-action to every redirect after a form submission, so the interaction
  // pages must allow the application's redirect_uri (POST /interaction/:uid/code -> /oidc/auth/:uid ->
  // the application). Without it the person is stuck on the page with their code spent.
  await t.test("with the gateway's own Content-Security-Policy, Sign in, Verify and Cancel get back to the application", async (t) => {
    for (const button of ['Sign in', 'Verify', 'Cancel'] as const) {
      const context = await newContext(t, { bypassCSP: false })
      const page = await context.newPage()
      const violations: string[] = []
      page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text().trim()) })
      // Whichever comes first: the application's callback, or Chromium refusing to go there.
      const outcome = Promise.race([
        page.waitForURL(`${rp.base}/callback?**`, { timeout: 15_000 }),
        page.waitForEvent('console', { predicate: (m) => /Content Security Policy/.test(m.text()), timeout: 15_000 }),
      ]).catch(() => {})
      if (button === 'Sign in') {
        // Asked for pwd, the password is all: Sign in goes straight back to the application.
        await page.goto(`${rp.base}/start?acr=${encodeURIComponent('urn:tessera:loa:pwd')}`)
        await signIn(t, page)
      } else {
        await start(page)
        await signIn(t, page)
        await onCodePage(t, page)
        if (button === 'Verify') await verify(t, page, nextCode())
        else await page.getByRole('button', { name: 'Cancel' }).click()
      }
      await outcome
      await page.waitForLoadState()
      for (const v of violations) t.comment(`${button}: ${v}`)
      if (!page.url().startsWith(rp.base)) {
        t.comment(`${button}: the browser stayed at ${new URL(page.url()).pathname} on "${await page.locator('h1').innerText()}"`)
        await screenshot(page, `11-${button.replace(' ', '-').toLowerCase()}-blocked-by-csp`)
      }
      t.equal(new URL(page.url()).origin, rp.base, `${button}: back at the application`)
      t.same(violations, [], `${button}: no Content-Security-Policy violation`)
    }
  })

  t.comment(`browser tests took ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
