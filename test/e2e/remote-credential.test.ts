// A user whose codes another service checks (a VIP credential behind our mutual TLS client) signs in to a
// relying application with step-up, in a real headless Chromium with scripts off, at desktop and phone
// width. The VIP service is a real HTTPS server on loopback with its own CA; the codes typed come from
// oathtool given the credential's key, which only that service holds. Screenshots go to
// .tessera-test/screens/remote-credential/.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { registerClient } from '../../src/commands/clients.js'
import { setPolicy } from '../../src/commands/policies.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { assignRemoteCredential } from '../../src/methods/remote/credentials.js'
import { configureRemoteService } from '../../src/methods/remote/services.js'
import { addUser, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { totpAt } from '../helpers/oathtool.js'
import { relyingApplication } from '../helpers/relying-app.js'
import { seedOf } from '../helpers/seeds.js'
import { startVipServer } from '../helpers/vip-server.js'

const MFA = 'urn:tessera:loa:mfa'
const screenshot = (page: Page, name: string) => screenshotAt(page, `remote-credential/${name}`)

const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('a remote credential in a step-up sign-in, in headless Chromium', browserTests)

async function browserTests(t: Test) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const { app } = await testApp(t, { PORT: String(port), PUBLIC_URL: base })
  await app.listen({ port, host: '127.0.0.1' })
  // The gateway's clock is the real one: the VIP service computes its codes from it.
  const seeds = { rita: seedOf('VSMT11110001').hex, sam: seedOf('VSMT11110002').hex }
  let step = 0
  /** The credential's code, one time step further each time (a code is accepted once). */
  const codeOf = (seed: string) => totpAt(seed, Math.floor(Date.now() / 1000) + 30 * step++)
  const expected = new Map<string, string>()
  const vip = await startVipServer(t, { credentials: {
    VSMT11110001: { code: () => expected.get('VSMT11110001') ?? '' },
    VSMT11110002: { code: () => expected.get('VSMT11110002') ?? '' },
  } })
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'remote', 'temporary_code'] } }, metadata())
  await configureRemoteService(app.commands, { id: 'vip', name: 'Symantec VIP', protocol: 'vip', url: vip.url, pkcs12: vip.clientPfx,
    passphrase: vip.clientPassphrase, caPem: vip.caPem.toString() }, metadata({ actor: { type: 'admin', id: 'test' } }))
  for (const [upn, credential] of [['rita@example.com', 'VSMT11110001'], ['sam@example.com', 'VSMT11110002']] as const) {
    const user = await addUser(app, upn)
    await assignRemoteCredential(app.commands, { userId: user.userId, service: 'vip', credential }, metadata({ actor: { type: 'admin', id: 'test' } }))
  }
  const rpPort = await freePort()
  const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [`http://127.0.0.1:${rpPort}/callback`], public: false }, metadata())
  const rp = await relyingApplication(t, rpPort, new URL(`${base}/oidc`), 'payroll', client.secret!, { name: 'Payroll', acr: MFA })

  await clearScreens('remote-credential')
  const browser = await launchBrowser(t)

  for (const [width, upn, credential, seed] of [[1280, 'rita@example.com', 'VSMT11110001', seeds.rita], [390, 'sam@example.com', 'VSMT11110002', seeds.sam]] as const) {
    await t.test(`${upn} signs in with step-up at ${width} px; a wrong code first, then the service's`, async (t) => {
      const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width, height: 844 } })
      t.teardown(() => context.close())
      await context.route((url) => !url.href.startsWith(`${base}/`) && !url.href.startsWith(`${rp.base}/`), (route) => route.abort())
      const page = await context.newPage()
      await page.goto(`${rp.base}/start`)
      await page.getByLabel('Email or username', { exact: true }).fill(upn)
      await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.waitForLoadState()
      t.ok(await page.getByRole('heading', { name: 'Enter code', level: 1 }).isVisible(), 'the Enter code page')
      t.ok(await page.getByText(`Security code ${credential}`).first().isVisible(), 'the method is named by its id at the service')
      await screenshot(page, `${width}-01-enter-code`)

      const code = codeOf(seed)
      expected.set(credential, code)
      const wrong = code === '000000' ? '000001' : '000000'
      await page.getByLabel('Code', { exact: true }).fill(wrong)
      await page.getByRole('button', { name: 'Verify' }).click()
      await page.waitForLoadState()
      t.ok(await page.getByText("That code didn't work").first().isVisible(), 'a wrong code is refused in words')
      await screenshot(page, `${width}-02-wrong-code`)

      const asked = vip.received.length
      await page.getByLabel('Code', { exact: true }).fill(code)
      await page.getByRole('button', { name: 'Verify' }).click()
      await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
      const said = (await page.locator('#result').innerText()).trim()
      t.equal(said, `Signed in as ${upn} at ${MFA} with pwd otp mfa`, 'the application says how')
      t.same(vip.received.slice(asked), [{ tokenId: credential, otp: code }], 'the VIP service checked the code typed')
      await screenshot(page, `${width}-03-signed-in`)
    })
  }

  await t.test('the VIP service down: the user is told in words, and can try again', async (t) => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
    t.teardown(() => context.close())
    await context.route((url) => !url.href.startsWith(`${base}/`) && !url.href.startsWith(`${rp.base}/`), (route) => route.abort())
    const page = await context.newPage()
    await page.goto(`${rp.base}/start`)
    await page.getByLabel('Email or username', { exact: true }).fill('rita@example.com')
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForLoadState()
    vip.setDelay(6000)
    const code = codeOf(seeds.rita)
    expected.set('VSMT11110001', code)
    await page.getByLabel('Code', { exact: true }).fill(code)
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForLoadState()
    vip.setDelay(0)
    t.ok(await page.getByText("We couldn't check your code right now. Try again, or choose another way to verify.").isVisible(), 'said in words')
    await screenshot(page, '390-04-service-down')
    // The same code, once the service answers again: it was not used up by the failure.
    await page.getByLabel('Code', { exact: true }).fill(code)
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL(`${rp.base}/callback?**`, { timeout: 10_000 })
    t.match((await page.locator('#result').innerText()).trim(), /^Signed in as rita@example\.com at urn:tessera:loa:mfa/)
  })
}
