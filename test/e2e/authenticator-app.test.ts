// An authenticator app in a real headless Chromium, scripts off, driven by what a person sees. The QR code
// is read as a phone would read it: from a screenshot, by an independent decoder (zbarimg, Debian's
// zbar-tools); the codes typed come from oathtool given the key it decoded. Screenshots go to
// .tessera-test/screens/authenticator-app/.
import { execFileSync } from 'node:child_process'
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { activateToken } from '../../src/commands/tokens.js'
import { formatActivationCode, requestActivationCode } from '../../src/methods/authenticator-app/activation-codes.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { totpAt, totpBase32At } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const screenshot = (page: Page, name: string) => screenshotAt(page, `authenticator-app/${name}`)

/** What a phone's camera would read off the screen: the QR code in a screenshot, decoded by zbarimg. */
function scanQr(png: string): string {
  try {
    return execFileSync('zbarimg', ['--quiet', '--raw', png], { encoding: 'utf8' }).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('zbarimg is needed for this test: apt-get install zbar-tools')
    throw error
  }
}

const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('an authenticator app, set up by scanning its QR code, in headless Chromium', browserTests)

async function browserTests(t: Test) {
  const port = await freePort()
  const GATEWAY = `http://127.0.0.1:${port}`
  const { app, clock } = await testApp(t, { PORT: String(port), PUBLIC_URL: GATEWAY, TESSERA_ORGANIZATION: 'Contoso' })
  await app.listen({ port, host: '127.0.0.1' })
  let offset = 0
  Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
  const unix = () => Math.floor(clock.now.getTime() / 1000)
  const zoe = await addUser(app, 'zoe@example.com')
  await importEntra(app, [`zoe@example.com,ZO-1,${seedOf('ZO-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'ZO-1', userId: zoe.userId, name: 'Key fob', code: totpAt(seedOf('ZO-1').hex, unix()) }, metadata())
  const ivan = await addUser(app, 'ivan@example.com')

  await clearScreens('authenticator-app')
  const browser = await launchBrowser(t)

  await t.test('Security info > Add sign-in method > Authenticator app, at desktop width', async (t) => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 900 } })
    t.teardown(() => context.close())
    await context.route((url) => !url.href.startsWith(GATEWAY), (route) => route.abort())
    const page = await context.newPage()
    await page.goto(`${GATEWAY}/login`)
    await page.getByLabel('Email or username', { exact: true }).fill('zoe@example.com')
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('link', { name: 'Add sign-in method' }).click()
    await page.waitForURL('**/security-info/verify')
    clock.now = new Date(clock.now.getTime() + 30_000)
    await page.getByLabel('Code', { exact: true }).fill(totpAt(seedOf('ZO-1').hex, unix()))
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL('**/security-info/add')
    await screenshot(page, '01-add')
    await page.getByRole('link', { name: 'Authenticator app', exact: true }).click()
    t.ok(await page.getByRole('heading', { name: 'Start by getting the app', level: 1 }).isVisible())
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForURL('**/security-info/authenticator-app/scan')
    t.ok(await page.getByRole('heading', { name: 'Set up your account in the app', level: 1 }).isVisible())
    t.ok(await page.getByRole('img', { name: 'QR code for your authenticator app' }).isVisible(), 'the QR code shows with scripts off')
    t.notOk(await page.getByText('Secret key').isVisible(), "the key waits behind Can't scan image?")
    const uri = scanQr(await screenshot(page, '02-scan'))
    t.match(uri, /^otpauth:\/\/totp\/Contoso:zoe%40example\.com\?secret=[A-Z2-7]{32}&issuer=Contoso&algorithm=SHA1&digits=6&period=30$/, 'zbarimg read the otpauth URI')
    const secret = new URL(uri).searchParams.get('secret')!
    await page.getByText("Can't scan image?").click()
    t.ok(await page.getByText('Secret key').isVisible(), 'a click opens it, without a script')
    t.equal((await page.locator('code.secret').innerText()).replace(/\s/g, ''), secret, 'the same key, in groups of four')
    await screenshot(page, '03-cant-scan')
    await page.getByRole('link', { name: 'Next' }).click()
    await page.getByLabel('Code', { exact: true }).fill(totpBase32At(secret, unix()))
    await screenshot(page, '04-code')
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByRole('heading', { name: 'Authenticator app was successfully registered' }).isVisible())
    await screenshot(page, '05-done')
    await page.getByRole('link', { name: 'Done' }).click()
    t.ok(await page.getByRole('cell', { name: 'Authenticator app', exact: true }).isVisible(), 'listed on Security info')
    await screenshot(page, '06-security-info')
  })

  await t.test('/activate with an activation code, at phone width', async (t) => {
    const issued = await requestActivationCode(app.commands, { userId: ivan.userId, by: 'admin', delivery: 'shown', activateUrl: `${GATEWAY}/activate` },
      metadata({ actor: { type: 'admin', id: 'ada@example.com' } }))
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
    t.teardown(() => context.close())
    await context.route((url) => !url.href.startsWith(GATEWAY), (route) => route.abort())
    const page = await context.newPage()
    await page.goto(`${GATEWAY}/activate`)
    t.ok(await page.getByRole('heading', { name: 'Activate a software token', level: 1 }).isVisible())
    await page.getByLabel('Activation code', { exact: true }).fill(formatActivationCode(issued.code!))
    await page.getByLabel('Email or username', { exact: true }).fill('ivan@example.com')
    await page.getByLabel('Password', { exact: true }).fill('not the password')
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByText("That activation code, account or password isn't right.", { exact: false }).isVisible())
    t.equal(await page.getByLabel('Activation code', { exact: true }).inputValue(), '', 'the code is not sent back in the page')
    await screenshot(page, '10-activate-wrong-password')
    await page.getByLabel('Activation code', { exact: true }).fill(formatActivationCode(issued.code!))
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByRole('heading', { name: 'Set up your account in the app', level: 1 }).isVisible())
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'fits a phone')
    const uri = scanQr(await screenshot(page, '11-activate-scan'))
    t.match(uri, /^otpauth:\/\/totp\/Contoso:ivan%40example\.com\?secret=/)
    await page.getByRole('link', { name: 'Next' }).click()
    await page.getByLabel('Code', { exact: true }).fill(totpBase32At(new URL(uri).searchParams.get('secret')!, unix()))
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByRole('heading', { name: 'Authenticator app was successfully registered' }).isVisible())
    t.ok(await page.getByText('to sign in as ivan@example.com').isVisible())
    await screenshot(page, '12-activate-done')
  })
}
