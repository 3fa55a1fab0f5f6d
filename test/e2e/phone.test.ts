// A phone in a real headless Chromium, scripts off, driven by what a person sees: add a phone on Security
// info (at phone width), then sign in to the demo relying application with the texted code. The codes typed
// are the ones the SMS centre on loopback received. Screenshots go to .tessera-test/screens/phone-method/.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { registerClient } from '../../src/commands/clients.js'
import { setPolicy } from '../../src/commands/policies.js'
import { activateToken } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { createDemoRp } from '../../demo/rp.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { totpAt } from '../helpers/oathtool.js'
import { codeIn, received, smscPeer } from '../helpers/peers.js'
import { seedOf } from '../helpers/seeds.js'

const screenshot = (page: Page, name: string) => screenshotAt(page, `phone-method/${name}`)
const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('add a phone, then sign in to an application with the texted code, in headless Chromium', browserTests)

async function browserTests(t: Test) {
  const smsc = await smscPeer(t, { receipts: true })
  const [gatewayPort, demoPort] = [await freePort(), await freePort()]
  const GATEWAY = `http://127.0.0.1:${gatewayPort}`
  const DEMO = `http://localhost:${demoPort}`
  const { app, clock } = await testApp(t, { PORT: String(gatewayPort), PUBLIC_URL: GATEWAY,
    TESSERA_DELIVERY_PROVIDERS: JSON.stringify([{ name: 'smsc', type: 'smpp', url: smsc.url }]) })
  await app.listen({ port: gatewayPort, host: '127.0.0.1' })
  let offset = 0
  Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
  const unix = () => Math.floor(clock.now.getTime() / 1000)
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'temporary_code'] } }, metadata())
  const yara = await addUser(app, 'yara@example.com')
  await importEntra(app, [`yara@example.com,YA-1,${seedOf('YA-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'YA-1', userId: yara.userId, name: 'Key fob', code: totpAt(seedOf('YA-1').hex, unix()) }, metadata())
  const { secret } = await registerClient(app.commands, { clientId: 'demo', name: 'Demo app', redirectUris: [`${DEMO}/callback`], public: false }, metadata())
  const demo = await createDemoRp({ gateway: GATEWAY, clientId: 'demo', clientSecret: secret!, baseUrl: DEMO })
  await demo.listen({ port: demoPort, host: '127.0.0.1' })
  t.teardown(() => demo.close())

  await clearScreens('phone-method')
  const browser = await launchBrowser(t)
  const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
  t.teardown(() => context.close())
  await context.route((url) => !url.href.startsWith(GATEWAY) && !url.href.startsWith(DEMO), (route) => route.abort())
  const page = await context.newPage()
  const heading = (name: string | RegExp) => page.getByRole('heading', { name, level: 1 }).isVisible()

  await t.test('Security info > Add sign-in method > Phone, at phone width', async (t) => {
    await page.goto(`${GATEWAY}/login`)
    await page.getByLabel('Email or username', { exact: true }).fill('yara@example.com')
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('link', { name: 'Add sign-in method' }).click()
    await page.waitForURL('**/security-info/verify')
    clock.now = new Date(clock.now.getTime() + 30_000)
    await page.getByLabel('Code', { exact: true }).fill(totpAt(seedOf('YA-1').hex, unix()))
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL('**/security-info/add')
    t.ok(await page.getByText('Get a code by text message. Less safe than an app or a hardware token.').isVisible(), 'the list says what a phone is worth')
    await screenshot(page, '01-add')
    await page.getByRole('link', { name: 'Phone', exact: true }).click()
    await page.waitForURL('**/security-info/phone')
    t.ok(await page.getByText('Text messages are the least safe way to sign in.').isVisible(), 'the risk, said plainly')
    t.ok(await page.getByRole('link', { name: 'Hardware token' }).isVisible(), 'and the safer method the policy allows')
    await page.getByLabel('Country code').selectOption('GB')
    await page.getByLabel('Phone number', { exact: true }).fill('07400 123490')
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'fits a phone')
    await screenshot(page, '02-number')
    await page.getByRole('button', { name: 'Text me a code' }).click()
    await page.waitForURL('**/security-info/phone/code?sent=1')
    t.ok(await page.getByText('We sent a code to +44 ••• ••• 490.').isVisible())
    await received(smsc.messages)
    await page.getByLabel('Code', { exact: true }).fill(codeIn(smsc.messages.at(-1)))
    await screenshot(page, '03-code')
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByRole('heading', { name: 'Your phone was registered' }).isVisible())
    await screenshot(page, '04-registered')
    await page.getByRole('link', { name: 'Done' }).click()
    t.ok(await page.getByRole('cell', { name: 'Phone', exact: true }).first().isVisible(), 'listed on Security info')
  })

  await t.test('the demo application asks for a code: Text, the code that came, signed in with amr sms', async (t) => {
    await page.setViewportSize({ width: 1280, height: 844 })
    const before = smsc.messages.length
    await page.goto(`${DEMO}/login?level=mfa`)
    t.ok(await heading('Enter code'), 'already signed in: only the code is asked for')
    await new Promise((r) => setTimeout(r, 300))
    t.equal(smsc.messages.length, before, 'nothing texted when the page opens: only when the user asks')
    await screenshot(page, '05-enter-code')
    await page.getByRole('button', { name: 'Text +44 ••• ••• 490' }).click()
    t.ok(await page.getByText(/We sent a code to \+44 ••• ••• 490\. It expires in 5 minutes\./).isVisible())
    await received(smsc.messages, before + 1)
    await page.getByLabel('Code', { exact: true }).fill(codeIn(smsc.messages.at(-1)))
    await screenshot(page, '06-code-sent')
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL(`${DEMO}/**`)
    t.ok(await page.getByText(/methods \(amr\): pwd, sms, mfa/).isVisible(), 'the ID token says a text message was used')
    await screenshot(page, '07-signed-in')
  })
}
