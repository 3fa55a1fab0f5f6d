// The attack of "a password alone must never be enough", step by step in a real headless Chromium with
// scripts off, at desktop and phone width: an attacker who knows only a user's password cannot delete,
// rename or add a sign-in method, and gets no mfa ID token; an insider cannot hand their own removed
// token to a victim. Screenshots go to .tessera-test/screens/method-security/ (gitignored).
import t, { type Test } from 'tap'
import { sql } from 'kysely'
import type { Browser, Page } from 'playwright-core'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, importEntra, listenOnLoopback, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const PASSWORD = 'correct horse battery'
const VICTIM_TOKEN = '7700001'
const INSIDER_TOKEN = '7700002'
const screenshot = (page: Page, name: string) => screenshotAt(page, `method-security/${name}`)

const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('a password alone changes no sign-in method, in headless Chromium', browserTests)

async function browserTests(t: Test) {
  const { app, database, clock } = await testApp(t)
  let now = Math.floor(Date.now() / 1000)
  clock.now = new Date(now * 1000)
  const base = await listenOnLoopback(app)
  const victim = await addUser(app, 'victim@example.com', PASSWORD, 'Victor Victim')
  const insider = await addUser(app, 'insider@example.com', PASSWORD, 'Ian Insider')
  await addUser(app, 'newbie@example.com', PASSWORD, 'Nina Newbie')
  await importEntra(app, [VICTIM_TOKEN, INSIDER_TOKEN].map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
  await activateToken(app.commands, { serial: VICTIM_TOKEN, userId: victim.userId, name: 'Victor fob', code: totpAt(seedOf(VICTIM_TOKEN).hex, now) }, metadata())
  await activateToken(app.commands, { serial: INSIDER_TOKEN, userId: insider.userId, name: 'Ian fob', code: totpAt(seedOf(INSIDER_TOKEN).hex, now) }, metadata())
  const CALLBACK = `${base}/rp-callback`
  await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: true }, metadata())

  await clearScreens('method-security')
  const browser = await launchBrowser(t)
  const eventCount = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
  const token = async (serial: string) => (await sql<{ status: string; user_id: string | null }>`select status, user_id from tokens where serial = ${serial}`.execute(database.db)).rows[0]!

  async function newPage(t: Test, b: Browser, width: number): Promise<Page> {
    const context = await b.newContext({ baseURL: base, javaScriptEnabled: false, viewport: { width, height: 800 } })
    t.teardown(() => context.close())
    await context.route((url) => !url.href.startsWith(base), (route) => route.abort())
    return context.newPage()
  }
  async function signIn(page: Page, upn: string) {
    await page.goto('/login')
    await page.getByLabel('Email or username', { exact: true }).fill(upn)
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL('**/security-info')
  }
  const heading = (page: Page, name: string) => page.getByRole('heading', { name, level: 1, exact: true }).isVisible()

  for (const [label, width] of [['desktop', 1024], ['phone', 390]] as const) {
    await t.test(`at ${label} width, the attacker with the password is sent to verify at every change`, async (t) => {
      const page = await newPage(t, browser, width)
      await signIn(page, 'victim@example.com')
      const before = await eventCount()
      t.ok(await page.getByRole('cell', { name: 'Victor fob (serial 7700001)' }).isVisible(), "the victim's token is listed")
      await screenshot(page, `${label}-01-security-info`)

      await page.getByRole('link', { name: 'Delete Victor fob' }).click()
      await page.waitForURL('**/security-info/verify')
      t.ok(await heading(page, 'Verify your identity'), 'Delete asks for a code')
      t.ok(await page.getByText('Before you delete a sign-in method, enter the code displayed on one of the tokens you already have.').isVisible())
      await screenshot(page, `${label}-02-delete-asks-code`)
      await page.getByLabel('Code', { exact: true }).fill('000000')
      await page.getByRole('button', { name: 'Verify' }).click()
      t.ok(await page.getByText("That code didn't work. Check the code on your token and try again.").isVisible(), 'a guess is refused')

      await page.goto('/security-info')
      await page.getByRole('link', { name: 'Change the name of Victor fob' }).click()
      await page.waitForURL('**/security-info/verify')
      t.ok(await page.getByText('Before you change a sign-in method').isVisible(), 'Change asks for a code')

      await page.goto('/security-info')
      await page.getByRole('link', { name: '+ Add sign-in method' }).click()
      await page.waitForURL('**/security-info/verify')
      t.ok(await page.getByText('Before you add a sign-in method').isVisible(), 'Add asks for a code')

      // A relying application asks for mfa: the attacker reaches Enter code and no further.
      const params = new URLSearchParams({ client_id: 'payroll', redirect_uri: CALLBACK, response_type: 'code', scope: 'openid',
        acr_values: LEVELS.mfa, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', nonce: 'n' })
      await page.goto(`/oidc/auth?${params}`)
      await page.waitForURL('**/interaction/**')
      t.ok(await heading(page, 'Enter code'), 'the application asks for a code the attacker does not have')
      t.notOk(page.url().startsWith(CALLBACK), 'no authorization code goes to the application')
      await screenshot(page, `${label}-03-enter-code`)

      // One refused guess is written (OtpRejected, and it counts); the refused changes wrote nothing.
      const written = (await sql<{ type: string }>`select type from events order by position desc limit ${(await eventCount()) - before}`.execute(database.db)).rows.map((r) => r.type)
      t.same(written, ['OtpRejected'], 'nothing but the refused guess is written')
      t.match(await token(VICTIM_TOKEN), { status: 'active', user_id: victim.userId }, "the victim's token is still active")
    })
  }

  await t.test('the insider deletes their own token with its code, and cannot hand it to another account', async (t) => {
    const page = await newPage(t, browser, 390)
    await signIn(page, 'insider@example.com')
    await page.getByRole('link', { name: 'Delete Ian fob' }).click()
    await page.waitForURL('**/security-info/verify')
    now += 30
    clock.now = new Date(now * 1000)
    await page.getByLabel('Code', { exact: true }).fill(totpAt(seedOf(INSIDER_TOKEN).hex, now))
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL('**/security-info/methods/*/remove')
    t.ok(await page.getByText('This is your last sign-in method.').isVisible(), 'the last method is called out')
    await screenshot(page, 'phone-04-delete-last-method')
    await page.getByRole('button', { name: 'Delete my last method' }).click()
    await page.waitForURL('**/security-info?notice=removed')
    t.ok(await page.getByText('The sign-in method was deleted.').isVisible())
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL('**/login?signedOut=1')
    t.ok(await page.getByText('You have signed out.').isVisible(), 'the sign-in page says so')

    // Now signed in as someone with no method yet (a password is all it takes for a first one).
    await signIn(page, 'newbie@example.com')
    await page.getByRole('link', { name: '+ Add sign-in method' }).click()
    await page.getByRole('link', { name: 'Hardware token', exact: true }).click()
    await page.getByLabel('Serial number', { exact: true }).fill(INSIDER_TOKEN)
    await page.getByRole('button', { name: 'Next' }).click()
    t.ok(await page.getByText("We couldn't find that serial number, or it can't be added to your account.").isVisible(), 'the removed token is not claimable')
    await screenshot(page, 'phone-05-insider-token-refused')
    t.match(await token(INSIDER_TOKEN), { status: 'inventory', user_id: null })
  })
}
