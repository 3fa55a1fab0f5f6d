// Add sign-in method > Hardware token in a real headless Chromium against the real gateway on a
// listening port, driven only by what a person sees: labels, roles, button and link names.
// Screenshots of each step go to .tessera-test/screens/enrollment/ (gitignored), to be looked at.
import t, { type Test } from 'tap'
import { sql } from 'kysely'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { addUser, importEntra, listenOnLoopback, testApp } from '../helpers/app.js'
import { assertFieldError, browserMissing, clearScreens, focused, launchBrowser, screenshot as screenshotAt } from '../helpers/browser.js'
import { totpAt } from '../helpers/oathtool.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'
import { base32 } from '../helpers/seeds.js'

const SERIAL = '8659623756140'
const PASSWORD = 'correct horse battery'

/** Screenshots of this file's steps go to .tessera-test/screens/enrollment/. */
const screenshot = (page: Page, name: string) => screenshotAt(page, `enrollment/${name}`)

const missing = browserMissing()
if (missing) {
  t.plan(0, missing)
} else {
  // One parent test, so tap's root does not end on its own while Chromium starts.
  t.test('adding a hardware token in headless Chromium', browserTests)
}

async function browserTests(t: Test) {
  const started = Date.now()
  const { app, database, clock } = await testApp(t)
  // One fixed instant, the real one, so oathtool's code for it is the one the gateway expects.
  const NOW = Math.floor(Date.now() / 1000)
  clock.now = new Date(NOW * 1000)
  const base = await listenOnLoopback(app)

  await addUser(app, 'alice@example.com', PASSWORD, 'Alice Example')
  await addUser(app, 'bob@example.com', PASSWORD, 'Bob Example')
  await addUser(app, 'carol@example.com', PASSWORD, 'Carol Example')
  await addUser(app, 'dave@example.com', PASSWORD, 'Dave Example')
  const report = await importEntra(app, [`,${SERIAL},${SEED_B32},30,Token2,C202`])
  t.same(report.rejected, [], 'the inventory imported')

  await clearScreens('enrollment')
  const browser = await launchBrowser(t)

  async function events(serial: string) {
    return (await sql<{ type: string }>`select type from events where stream_id = ${`token-${serial}`} order by stream_version`
      .execute(database.db)).rows.map((e) => e.type)
  }

  async function newPage(t: Test, b: Browser, options: { javaScriptEnabled?: boolean } = {}): Promise<Page> {
    const context: BrowserContext = await b.newContext({ baseURL: base, viewport: { width: 1024, height: 720 }, ...options })
    t.teardown(() => context.close())
    const page = await context.newPage()
    // Nothing on these pages may reach outside the gateway.
    await context.route((url) => !url.href.startsWith(base), (route) => route.abort())
    return page
  }

  async function heading(page: Page, name: string, level = 1) {
    return page.getByRole('heading', { name, level, exact: true }).isVisible()
  }

  async function signIn(t: Test, page: Page, upn: string, shot?: string) {
    await page.goto('/security-info')
    t.match(new URL(page.url()).pathname, '/login', 'a signed-out visitor is sent to sign in')
    t.ok(await heading(page, 'Sign in'), 'the sign-in page')
    await page.getByLabel('Email or username', { exact: true }).fill(upn)
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    if (shot) await screenshot(page, shot)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.waitForURL('**/security-info')
    t.ok(await heading(page, 'Security info'), 'signed in, on Security info')
  }

  async function toSerialStep(page: Page, shot?: string) {
    await page.getByRole('link', { name: '+ Add sign-in method' }).click()
    await page.waitForURL('**/security-info/add')
    t.ok(await page.getByText('Which method would you like to add?').isVisible())
    t.ok(await page.getByText('A key fob that shows a code. You need its serial number, on its back.').isVisible(), 'each method says what it is')
    if (shot) await screenshot(page, shot)
    await page.getByRole('link', { name: 'Hardware token', exact: true }).click()
    await page.waitForURL('**/security-info/hardware-token/serial')
  }

  await t.test('alice adds her hardware token by serial, name and code, with JavaScript disabled', async (t) => {
    const page = await newPage(t, browser, { javaScriptEnabled: false })
    await signIn(t, page, 'alice@example.com', '01-sign-in')
    t.ok(await page.getByText('Alice Example (alice@example.com)').isVisible(), 'the account is shown')
    t.ok(await page.getByText('You have no sign-in methods yet.').isVisible())
    await screenshot(page, '02-security-info-empty')

    await toSerialStep(page, '03-add-method')
    t.ok(await heading(page, 'Hardware token'), 'step 1 is headed Hardware token')
    t.ok(await page.getByText('Step 1 of 3').isVisible())
    t.ok(await page.getByText('Please enter the serial number located on the back of the token.').isVisible())
    await page.getByLabel('Serial number', { exact: true }).fill(SERIAL)
    await screenshot(page, '04-serial')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForURL('**/security-info/hardware-token/name')

    t.ok(await page.getByText('Step 2 of 3').isVisible())
    const name = page.getByLabel('Name', { exact: true })
    t.equal(await name.inputValue(), 'Token2 C202', 'the name is suggested from the inventory')
    t.ok(await page.getByText(`Serial number ${SERIAL}`).isVisible(), 'the serial is shown under the name')
    await screenshot(page, '05-name-suggested')
    await name.fill('My key fob')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForURL('**/security-info/hardware-token/code')

    t.ok(await page.getByText('Step 3 of 3').isVisible())
    t.ok(await page.getByText(/enter the 6-digit verification code/).isVisible())
    t.ok(await page.getByText(`My key fob, serial number ${SERIAL}`).isVisible(), 'the token being added is named')
    const code = totpAt(SEED_HEX, NOW)
    t.match(code, /^\d{6}$/, 'oathtool gave a code')
    await page.getByLabel('Verification code', { exact: true }).fill(code)
    await screenshot(page, '06-code')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForURL('**/security-info/hardware-token/done?**')

    t.ok(await heading(page, 'Your hardware token has been added', 2), 'the success heading')
    t.ok(await page.getByRole('status').getByText('Your hardware token has been added').isVisible(), 'announced as a status')
    t.ok(await page.getByText(`You can now use My key fob (serial number ${SERIAL}) to sign in.`).isVisible())
    await screenshot(page, '07-done')
    await page.getByRole('link', { name: 'Done' }).click()
    await page.waitForURL('**/security-info')

    t.ok(await heading(page, 'Security info'))
    const row = page.getByRole('row').filter({ hasText: 'My key fob' })
    t.equal(await row.count(), 1, 'one method listed')
    const cells = await row.getByRole('cell').allInnerTexts()
    t.equal(cells[0], 'Hardware token', 'its method')
    t.match(cells[1], `My key fob (serial ${SERIAL})`, 'its name and serial')
    t.ok(await row.getByRole('link', { name: 'Change the name of My key fob' }).isVisible())
    t.ok(await row.getByRole('link', { name: 'Delete My key fob' }).isVisible())
    t.notOk(await page.getByText('You have no sign-in methods yet.').isVisible())
    await screenshot(page, '08-security-info-listed')
    await page.setViewportSize({ width: 390, height: 800 })
    await screenshot(page, '09-security-info-listed-narrow')

    t.same(await events(SERIAL), ['TokenImported', 'TokenAssigned', 'TokenRenamed', 'TokenActivated'])
  })

  await t.test('a wrong serial shows the error next to the field and keeps what was typed', async (t) => {
    const page = await newPage(t, browser)
    await signIn(t, page, 'bob@example.com')
    await toSerialStep(page)
    const field = page.getByLabel('Serial number', { exact: true })
    await field.fill('1234 5678 90')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForLoadState()
    t.equal(new URL(page.url()).pathname, '/security-info/hardware-token/serial', 'still on the serial step')
    const message = "We couldn't find that serial number, or it can't be added to your account."
    const error = page.getByRole('alert').filter({ hasText: message })
    t.ok(await error.isVisible(), 'the message is shown as an alert')
    t.equal(await field.inputValue(), '1234567890', 'the serial stays in the field (spaces taken out)')
    await assertFieldError(t, field, error)
    await screenshot(page, '10-serial-wrong')

    // An empty serial is asked for in words of its own.
    await field.fill('')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForLoadState()
    t.ok(await page.getByRole('alert').filter({ hasText: 'Enter the serial number on the back of your token.' }).isVisible(), 'an empty serial is asked for')
    await screenshot(page, '11-serial-empty')
  })

  await t.test('Cancel on the name step goes back to Security info and adds nothing', async (t) => {
    const before = await events(SERIAL)
    await addUser(app, 'erin@example.com', PASSWORD, 'Erin Example')
    await importEntra(app, [`,8659623756141,${base32(Buffer.from('00112233445566778899aabbccddeeff00112233', 'hex'))},30,Token2,C202`])
    const page = await newPage(t, browser, { javaScriptEnabled: false })
    await signIn(t, page, 'erin@example.com')
    await toSerialStep(page)
    await page.getByLabel('Serial number', { exact: true }).fill('8659623756141')
    await page.getByRole('button', { name: 'Next' }).click()
    await page.waitForURL('**/security-info/hardware-token/name')
    await page.getByLabel('Name', { exact: true }).fill('Never added')
    await page.getByRole('button', { name: 'Cancel' }).click()
    await page.waitForURL('**/security-info')
    t.ok(await heading(page, 'Security info'), 'back on Security info')
    t.ok(await page.getByText('You have no sign-in methods yet.').isVisible(), 'nothing was added')
    t.equal(await page.getByText('Never added').count(), 0)
    await screenshot(page, '12-cancelled')
    t.same(await events('8659623756141'), ['TokenImported'], 'no event for the cancelled token')
    t.same(await events(SERIAL), before, "alice's token is untouched")
    // The steps were forgotten: the serial step starts empty.
    await page.goto('/security-info/hardware-token/serial')
    t.equal(await page.getByLabel('Serial number', { exact: true }).inputValue(), '', 'the serial step starts afresh')
    await page.goto('/security-info/hardware-token/name')
    t.equal(new URL(page.url()).pathname, '/security-info/hardware-token/serial', 'the name step needs a serial again')
  })

  await t.test('keyboard: Tab reaches the serial field and Next, each with a visible focus ring', async (t) => {
    const page = await newPage(t, browser)
    await signIn(t, page, 'carol@example.com')
    const AMBER_RING = { focusVisible: true, outlineStyle: 'solid', outlineWidth: '3px', outlineColor: 'rgb(255, 185, 0)' }
    const seen: string[] = []
    /** Presses `key` until the focused element is `name` (its id or text), checking each stop has a visible ring. */
    async function tabTo(name: string, key = 'Tab', shot?: string) {
      for (let i = 0; i < 10; i++) {
        await page.keyboard.press(key)
        const f = await focused(page)
        if (!f) continue
        const label = f.id || f.text
        seen.push(label)
        t.match(f, AMBER_RING, `${label}: a visible focus ring`)
        if (label === name) {
          if (shot) await screenshot(page, shot)
          return f
        }
      }
      t.fail(`${key} never reached ${name} (went ${seen.join(' > ')})`)
      return null
    }

    // Security info > "+ Add sign-in method" > Hardware token, by keyboard alone.
    await tabTo('+ Add sign-in method', 'Tab', '20-keyboard-add-link')
    await page.keyboard.press('Enter')
    await page.waitForURL('**/security-info/add')
    await tabTo('Hardware token', 'Tab', '21-keyboard-method')
    await page.keyboard.press('Enter')
    await page.waitForURL('**/security-info/hardware-token/serial')

    // The serial field has the focus on arrival; Tab goes on to Next, and back round to the field.
    // Browsers apply autofocus at a rendering step after the load event: give it up to a second.
    let first = await focused(page)
    for (let i = 0; i < 20 && first?.id !== 'serial'; i++) {
      await page.waitForTimeout(50)
      first = await focused(page)
    }
    t.equal(first?.id, 'serial', 'the serial field is focused on arrival')
    seen.length = 0
    t.ok(await tabTo('Next', 'Tab', '22-keyboard-next'), 'Tab reaches Next')
    t.same(seen, ['Cancel', 'Back', 'Next'], 'in the order they are shown')
    seen.length = 0
    t.ok(await tabTo('serial', 'Shift+Tab'), 'Shift+Tab goes back to the field')
    await tabTo('Sign out', 'Shift+Tab')
    seen.length = 0
    t.ok(await tabTo('serial', 'Tab', '23-keyboard-serial'), 'Tab from the page header reaches the Serial number field')
    t.same(seen, ['serial'], 'the field is the first stop after the header')
  })

  await t.test('keyboard: Enter in a field submits the step, not Cancel', async (t) => {
    await importEntra(app, [`,8659623756142,${base32(Buffer.from('ffeeddccbbaa99887766554433221100ffeeddcc', 'hex'))},30,Token2,C202`])
    const page = await newPage(t, browser, { javaScriptEnabled: false })
    await signIn(t, page, 'dave@example.com')
    await toSerialStep(page)
    await page.getByLabel('Serial number', { exact: true }).fill('8659623756142')
    await page.getByLabel('Serial number', { exact: true }).press('Enter')
    await page.waitForLoadState()
    t.equal(new URL(page.url()).pathname, '/security-info/hardware-token/name', 'Enter on the serial step goes to the name step')
    await page.getByLabel('Name', { exact: true }).fill('Dave key')
    await page.getByLabel('Name', { exact: true }).press('Enter')
    await page.waitForLoadState()
    t.equal(new URL(page.url()).pathname, '/security-info/hardware-token/code', 'Enter on the name step goes to the code step')
    await page.getByLabel('Verification code', { exact: true }).fill(totpAt('ffeeddccbbaa99887766554433221100ffeeddcc', NOW))
    await page.getByLabel('Verification code', { exact: true }).press('Enter')
    await page.waitForLoadState()
    t.equal(new URL(page.url()).pathname, '/security-info/hardware-token/done', 'Enter on the code step adds the token')
    t.ok(await heading(page, 'Your hardware token has been added', 2))
  })

  t.comment(`browser tests took ${((Date.now() - started) / 1000).toFixed(1)} s`)
}
