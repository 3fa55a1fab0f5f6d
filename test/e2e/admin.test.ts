// The admin pages in a real headless Chromium with JavaScript off, driven by what a person sees:
// an admin signs in, enters a code, finds a token, assigns, is refused an unlock, revokes it, and
// creates a security policy for a group. Screenshots go to .tessera-test/screens/admin/ (gitignored).
import t, { type Test } from 'tap'
import { sql } from 'kysely'
import type { Page } from 'playwright-core'
import { activateToken } from '../../src/commands/tokens.js'
import { grantRole } from '../../src/commands/users.js'
import { addUser, importEntra, listenOnLoopback, testApp } from '../helpers/app.js'
import { browserMissing, clearScreens, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const PASSWORD = 'correct horse battery'
const screenshot = (page: Page, name: string) => screenshotAt(page, `admin/${name}`)

const missing = browserMissing()
if (missing) t.plan(0, missing)
else t.test('administering tokens and policies in headless Chromium', browserTests)

async function browserTests(t: Test) {
  const { app, database, clock } = await testApp(t)
  const NOW = Math.floor(Date.now() / 1000)
  clock.now = new Date(NOW * 1000)
  const base = await listenOnLoopback(app)

  const ada = await addUser(app, 'ada@example.com', PASSWORD, 'Ada Admin')
  await addUser(app, 'alice@example.com', PASSWORD, 'Alice Example')
  await grantRole(app.commands, 'ada@example.com', 'admin', metadata())
  await importEntra(app, [`ada@example.com,AD-1,${SEED_B32},30,Token2,C202`, `,8659623756140,${SEED_B32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'AD-1', userId: ada.userId, name: 'Ada key', code: totpAt(SEED_HEX, NOW - 30) }, metadata())
  const types = async (stream: string) => (await sql<{ type: string; metadata: any }>`select type, metadata from events
    where stream_id = ${stream} order by stream_version`.execute(database.db)).rows

  await clearScreens('admin')
  const browser = await launchBrowser(t)
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1100, height: 800 }, javaScriptEnabled: false })
  t.teardown(() => context.close())
  await context.route((url) => !url.href.startsWith(base), (route) => route.abort())
  const page = await context.newPage()
  const heading = (name: string | RegExp, level = 1) => page.getByRole('heading', { name, level }).isVisible()

  await t.test('sign in, then a code, then the token list', async (t) => {
    await page.goto('/admin')
    await page.waitForURL('**/login')
    await page.getByLabel('Email or username', { exact: true }).fill('ada@example.com')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL('**/security-info/verify')
    t.ok(await heading('Verify your identity'), 'a password alone does not open the admin pages')
    await page.getByLabel('Code', { exact: true }).fill(totpAt(SEED_HEX, NOW))
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL('**/admin/tokens')
    t.ok(await heading('Tokens'), 'back on the admin pages')
    t.equal(await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Tokens' }).getAttribute('aria-current'), 'page')
    await screenshot(page, '01-tokens')
  })

  await t.test('find a token by serial and assign it', async (t) => {
    await page.getByLabel('Serial number begins with').fill('8659')
    await page.getByLabel('State').selectOption('inventory')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.waitForURL('**/admin/tokens?**')
    const rows = page.getByRole('row').filter({ hasText: '8659623756140' })
    t.equal(await rows.count(), 1, 'the inventory token is found')
    await rows.getByRole('link', { name: '8659623756140' }).click()
    await page.waitForURL('**/admin/tokens/8659623756140')
    t.ok(await heading('Hardware token 8659623756140'))
    await page.getByLabel('Assign to user').fill('alice@example.com')
    await page.getByRole('button', { name: 'Assign', exact: true }).click()
    await page.waitForURL('**/admin/tokens/8659623756140?done=assign')
    t.ok(await page.getByRole('status').getByText('The token was assigned.').isVisible())
    t.ok(await page.getByRole('link', { name: 'alice@example.com' }).isVisible(), 'its user is shown')
    await screenshot(page, '02-assigned')
  })

  await t.test('a refused unlock says why on the page and writes nothing', async (t) => {
    const before = (await types('token-8659623756140')).length
    await page.getByRole('button', { name: 'Unlock and reset failures' }).click()
    t.ok(await page.getByRole('alert').getByText(/token 8659623756140 is not locked/).isVisible())
    await screenshot(page, '03-refused')
    t.equal((await types('token-8659623756140')).length, before)
  })

  await t.test('revoke it as lost: its seed is destroyed, its history stays', async (t) => {
    await page.getByLabel('Revoke for good (the seed is destroyed)').selectOption('lost')
    await page.getByRole('button', { name: 'Revoke', exact: true }).click()
    t.ok(await page.getByText(/will be revoked for good \(lost\): its seed is destroyed/).isVisible(), 'the consequence, in words')
    await screenshot(page, '04-confirm-revoke')
    await page.getByRole('button', { name: 'Yes, revoke' }).click()
    await page.waitForURL('**/admin/tokens/8659623756140?done=revoke')
    t.ok(await page.getByRole('status').getByText('The token was revoked and its seed destroyed.').isVisible())
    t.ok(await page.getByRole('cell', { name: /revoked hardware token 8659623756140 \(lost\)/ }).isVisible(), 'the history tells it')
    t.equal(await page.getByRole('button', { name: 'Revoke', exact: true }).count(), 0, 'nothing more to do with it')
    await screenshot(page, '04-revoked')
    const events = await types('token-8659623756140')
    t.same(events.slice(-2).map((e) => e.type), ['TokenRevoked', 'TokenSecretDestroyed'])
    t.same(events.at(-2)!.metadata.actor, { type: 'admin', id: 'ada@example.com' })
  })

  await t.test('create a policy and assign it to a group', async (t) => {
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Security policies' }).click()
    await page.waitForURL('**/admin/policies')
    t.ok(await page.getByRole('row').filter({ hasText: 'everyone else' }).isVisible(), 'the default policy is listed')
    await page.getByLabel('Id', { exact: true }).fill('finance-strict')
    await page.getByLabel('Name', { exact: true }).fill('Finance strict')
    await page.getByRole('checkbox', { name: 'Temporary code' }).uncheck()
    await page.getByLabel('Wrong codes before the token locks').fill('3')
    await screenshot(page, '05-new-policy')
    await page.getByRole('button', { name: 'Create policy' }).click()
    await page.waitForURL('**/admin/policies/finance-strict?done=saved')
    t.ok(await heading('Policy: Finance strict'))
    await page.getByLabel('Assign to', { exact: true }).selectOption('group')
    await page.getByLabel('User principal name or group name').fill('finance')
    await page.getByRole('button', { name: 'Assign', exact: true }).click()
    await page.waitForURL('**/admin/policies/finance-strict?done=assigned')
    t.ok(await page.getByText('Group finance').isVisible())
    await screenshot(page, '06-policy')
    const events = await types('policy-finance-strict')
    t.same(events.map((e) => e.type), ['PolicyCreated', 'PolicyAssigned'])
  })

  await t.test("reset a user's password: the temporary one, then the user chooses theirs (390 px too)", async (t) => {
    await page.goto('/admin/users/alice@example.com')
    await page.getByRole('button', { name: 'Reset the password' }).click()
    t.ok(await heading('Reset the password of alice@example.com?'), 'asked first, in words')
    await page.getByRole('button', { name: 'Yes, reset the password' }).click()
    const temporary = (await page.locator('#temporary-password').textContent())!.trim()
    t.match(temporary, /^[A-Za-z2-9]{4}(-[A-Za-z2-9]{4}){3}$/)
    await screenshot(page, '07-temporary-password')

    const alice = await browser.newContext({ baseURL: base, viewport: { width: 390, height: 844 }, javaScriptEnabled: false })
    t.teardown(() => alice.close())
    await alice.route((url) => !url.href.startsWith(base), (route) => route.abort())
    const her = await alice.newPage()
    await her.goto('/login')
    await her.getByLabel('Email or username', { exact: true }).fill('alice@example.com')
    await her.getByLabel('Password', { exact: true }).fill(temporary)
    await her.getByRole('button', { name: 'Sign in' }).click()
    await her.waitForURL('**/password/change')
    t.ok(await her.getByRole('heading', { name: 'Update your password', level: 1 }).isVisible())
    t.ok(await her.evaluate(() => document.documentElement.scrollWidth <= 390), 'fits a phone')
    await screenshotAt(her, 'admin/08-update-password-390')
    await her.getByLabel('New password', { exact: true }).fill('alice chose this one')
    await her.getByLabel('Confirm new password', { exact: true }).fill('alice chose something else')
    await her.getByRole('button', { name: 'Sign in' }).click()
    t.ok(await her.getByText("The passwords don't match.").isVisible(), 'a mistake is said beside the field')
    await her.getByLabel('New password', { exact: true }).fill('alice chose this one')
    await her.getByLabel('Confirm new password', { exact: true }).fill('alice chose this one')
    await her.getByRole('button', { name: 'Sign in' }).click()
    await her.waitForURL('**/security-info')
    t.ok(await her.getByText('Your password was changed.').isVisible())
    await screenshotAt(her, 'admin/09-password-changed-390')
  })

  await t.test('delete an account: its consequence in words, then it is gone from the list', async (t) => {
    await page.goto('/admin/users/alice@example.com')
    await page.getByRole('button', { name: 'Delete the account' }).click()
    t.ok(await heading('Delete the account of alice@example.com?'))
    t.ok(await page.getByText(/can never sign in again; the name becomes free for a new account\. They have no tokens\./).isVisible())
    await screenshot(page, '10-delete-account')
    await page.getByRole('button', { name: 'Yes, delete the account' }).click()
    await page.waitForURL('**/admin/users?deleted=*')
    t.ok(await page.getByText('The account of alice@example.com was deleted.', { exact: false }).isVisible())
    t.equal(await page.getByRole('link', { name: 'alice@example.com' }).count(), 0, 'no longer listed')
    await screenshot(page, '11-deleted')
    t.same((await types(`user-${(await database.db.selectFrom('users').select('id').where('upn', '=', 'alice@example.com').executeTakeFirstOrThrow()).id}`)).at(-1)!.type, 'UserDeleted')
  })
}
