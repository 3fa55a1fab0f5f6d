// A real headless Chromium (Debian's, never one Playwright downloads) for tests that drive the
// pages as a person would: by labels, roles and button names. `.ci/run` installs chromium.
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Locator, type Page } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM = '/usr/bin/chromium'

/** Why browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found: apt-get install -y chromium (.ci/run does) to run the browser tests`
}

/** Launches Chromium headless, closed at the test's teardown. */
export async function launchBrowser(t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  return browser
}

/** Screenshots go to `.tessera-test/screens/` (gitignored) at the project root. */
export const SCREENS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '.tessera-test', 'screens')

/** Empties `.tessera-test/screens/<folder>/`, so that only this run's screenshots are there. */
export async function clearScreens(folder: string): Promise<void> {
  await fs.rm(path.join(SCREENS_DIR, folder), { recursive: true, force: true })
}

/** A full-page screenshot at `.tessera-test/screens/<name>.png` (`name` may hold a folder); returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(SCREENS_DIR, `${name}.png`)
  await fs.mkdir(path.dirname(file), { recursive: true })
  await page.screenshot({ path: file, fullPage: true })
  return file
}

/** What the focused element looks like: which one it is, and its focus ring. */
export interface Focused {
  tag: string
  id: string
  text: string
  focusVisible: boolean
  outlineStyle: string
  outlineWidth: string
  outlineColor: string
}

export async function focused(page: Page): Promise<Focused | null> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null
    if (!el || el === document.body) return null
    const style = getComputedStyle(el)
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      text: (el.innerText || el.getAttribute('aria-label') || '').trim(),
      focusVisible: el.matches(':focus-visible'),
      outlineStyle: style.outlineStyle,
      outlineWidth: style.outlineWidth,
      outlineColor: style.outlineColor,
    }
  })
}

/** --error in public/tessera.css */
export const ERROR_RED = 'rgb(164, 38, 44)'

/**
 * A field's error as a person meets it: an alert, the field marked invalid and described by it, red,
 * right under the field and lined up with it.
 */
export async function assertFieldError(t: Test, field: Locator, error: Locator): Promise<void> {
  t.equal(await field.getAttribute('aria-invalid'), 'true', 'the field is marked invalid')
  t.ok((await field.getAttribute('aria-describedby'))?.split(' ').includes((await error.getAttribute('id'))!), 'the field is described by the message')
  t.equal(await error.evaluate((e) => getComputedStyle(e).color), ERROR_RED, 'the message is red')
  t.equal(await field.evaluate((e) => getComputedStyle(e).borderTopColor), ERROR_RED, 'the field has a red border')
  const f = (await field.boundingBox())!
  const e = (await error.boundingBox())!
  t.ok(e.y >= f.y + f.height && e.y - (f.y + f.height) < 16, `the message is right under the field (${Math.round(e.y - f.y - f.height)} px)`)
  t.ok(Math.abs(e.x - f.x) < 2, 'and lined up with it')
}
