// Every page at phone width (390 px) and at desktop width (1280 px) in headless Chromium with scripts off:
// nothing wider than the screen (a wide table scrolls inside its own box), no value broken one letter per
// line. A screenshot of each goes to .tessera-test/screens/phone/ and desktop/ (gitignored), to be looked at.
import t, { type Test } from 'tap'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken, revokeToken } from '../../src/commands/tokens.js'
import { grantRole } from '../../src/commands/users.js'
import { setPolicy } from '../../src/commands/policies.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { addUser, importEntra, listenOnLoopback, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('every page fits a 390 px and a 1280 px screen', phoneTests)

async function phoneTests(t: Test) {
  const { app, clock } = await testApp(t)
  let now = Math.floor(Date.now() / 1000)
  clock.now = new Date(now * 1000)
  const base = await listenOnLoopback(app)
  const ada = await addUser(app, 'ada.lovelace.with.a.long.name@example.com', 'correct horse battery', 'Ada Admin')
  await grantRole(app.commands, ada.upn, 'admin', metadata())
  await grantRole(app.commands, ada.upn, 'auditor', metadata())
  const SERIALS = ['865962375614012', '865962375614013', '865962375614014']
  await importEntra(app, SERIALS.map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
  await activateToken(app.commands, { serial: SERIALS[0]!, userId: ada.userId, name: 'Ada key', code: totpAt(seedOf(SERIALS[0]!).hex, now) }, metadata())
  await activateToken(app.commands, { serial: SERIALS[1]!, userId: ada.userId, name: 'Spare key', code: totpAt(seedOf(SERIALS[1]!).hex, now) }, metadata())
  await revokeToken(app.commands, { serial: SERIALS[2]!, reason: 'lost' }, metadata({ actor: { type: 'admin', id: ada.upn } }))
  // Phones and e-mail addresses allowed, so that their pages show.
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'] } }, metadata())
  await registerClient(app.commands, { clientId: 'payroll-application-with-a-long-id', name: 'Payroll', redirectUris: ['https://payroll.internal.example.com/oidc/callback/with/a/long/path'], public: false }, metadata())

  await clearScreens('phone')
  await clearScreens('desktop')
  const browser = await launchBrowser(t)
  const context = await browser.newContext({ baseURL: base, javaScriptEnabled: false, viewport: { width: 390, height: 844 } })
  t.teardown(() => context.close())
  await context.route((url) => !url.href.startsWith(base), (route) => route.abort())
  const page = await context.newPage()

  await page.goto('/login')
  await page.getByLabel('Email or username', { exact: true }).fill(ada.upn)
  await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL('**/security-info')
  await page.goto('/security-info/verify')
  now += 30
  clock.now = new Date(now * 1000)
  await page.getByLabel('Code', { exact: true }).fill(totpAt(seedOf(SERIALS[0]!).hex, now))
  await page.getByRole('button', { name: 'Verify' }).click()
  await page.waitForURL('**/security-info/add')

  const pages = [
    '/security-info', '/security-info/add', '/security-info/verify', '/security-info/default', '/security-info/hardware-token/serial',
    '/security-info/phone', '/security-info/email',
    `/security-info/methods/${SERIALS[0]}/rename`, `/security-info/methods/${SERIALS[0]}/remove`,
    '/admin/tokens', `/admin/tokens/${SERIALS[0]}`, `/admin/tokens/${SERIALS[2]}`, '/admin/import', '/admin/users',
    `/admin/users/${encodeURIComponent(ada.upn)}`, '/admin/policies', '/admin/policies/default', '/admin/clients',
    '/admin/clients/payroll-application-with-a-long-id', '/audit', `/audit/tokens/${SERIALS[0]}`, '/audit/verify',
  ]
  for (const [folder, viewport] of [['phone', 390], ['desktop', 1280]] as const) {
  await page.setViewportSize({ width: viewport, height: 844 })
  for (const path of pages) {
    await page.goto(path)
    const name = path.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '')
    await screenshot(page, `${folder}/${name}`)
    const width = await page.evaluate(() => document.documentElement.scrollWidth)
    t.ok(width <= viewport, `${path}: ${width} px wide at ${viewport} px`)
    // A value broken one letter per line shows as a cell or definition far taller than wide with little text.
    const squeezed = await page.evaluate(() => [...document.querySelectorAll('td, dd')].filter((e) => {
      const r = e.getBoundingClientRect()
      return r.width > 0 && r.width < 40 && r.height > 120
    }).map((e) => (e.textContent ?? '').trim().slice(0, 30)))
    t.same(squeezed, [], `${path}: no value squeezed into a narrow column at ${viewport} px`)
  }
  }
}
