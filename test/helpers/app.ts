// The real gateway on this test file's database, with a clock the test controls, and a small browser
// over app.inject that keeps cookies and sends each form's CSRF token back.
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { loadConfig, serverOptions } from '../../fastify.config.js'
import app from '../../src/app.js'
import { importTokens } from '../../src/commands/import-tokens.js'
import { registerUser } from '../../src/commands/users.js'
import { parseInventory } from '../../src/import/index.js'
import { metadata, testDatabase, type TestDatabase } from './database.js'
import { TEST_DATA_DIR } from './embedded-server.js'

export interface TestApp {
  app: FastifyInstance
  database: TestDatabase
  logs: string[]
  clock: { now: Date }
}

/** The gateway on this test file's own database, or on `options.database` (a server the test controls). */
export async function testApp(t: Test, env: Record<string, string> = {}, options: { database?: TestDatabase } = {}): Promise<TestApp> {
  const database = options.database ?? await testDatabase(t)
  await fs.mkdir(TEST_DATA_DIR, { recursive: true })
  const dataDir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'app-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const config = loadConfig({
    DATABASE_URL: database.url,
    TESSERA_DATA_DIR: dataDir,
    TESSERA_MASTER_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'info',
    ...env,
  })
  const logs: string[] = []
  const server = serverOptions(config)
  const fastify = Fastify({ ...server, logger: { ...(server.logger as object), stream: { write: (line: string) => void logs.push(line) } } })
  const clock = { now: new Date() }
  await fastify.register(app, { config, databaseUrl: database.url, now: () => clock.now })
  await fastify.ready()
  t.teardown(() => fastify.close())
  return { app: fastify, database, logs, clock }
}

/** Starts the app on a free loopback port; returns its base URL. */
export async function listenOnLoopback(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
}

export async function addUser(app: FastifyInstance, upn: string, password = 'correct horse battery', displayName = upn.split('@')[0]!) {
  return registerUser(app.commands, { upn, displayName, password }, metadata({ actor: { type: 'admin', id: 'test' } }))
}

/** Imports an Entra CSV through the real parser and import command. */
export async function importEntra(app: FastifyInstance, rows: string[]) {
  const csv = ['upn,serial number,secret key,time interval,manufacturer,model', ...rows].join('\n')
  return importTokens(app.commands, parseInventory('entra', (async function* () { yield csv })()),
    metadata({ actor: { type: 'admin', id: 'test' } }), { format: 'entra' })
}

export interface Page {
  status: number
  headers: Record<string, unknown>
  body: string
  location: string | undefined
}

export class Browser {
  private cookies = new Map<string, string>()
  private csrf = ''
  ip = '127.0.0.1'

  constructor(private readonly app: FastifyInstance) {}

  private remember(headers: Record<string, unknown>) {
    const set = headers['set-cookie']
    for (const c of (Array.isArray(set) ? set : set ? [set] : []) as string[]) {
      const [pair] = c.split(';')
      const [name, ...value] = pair!.split('=')
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(c)) this.cookies.delete(name!)
      else this.cookies.set(name!, value.join('='))
    }
  }

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  async get(url: string): Promise<Page> {
    const res = await this.app.inject({ method: 'GET', url, headers: { cookie: this.cookieHeader(), accept: 'text/html' }, remoteAddress: this.ip })
    this.remember(res.headers)
    const token = res.body.match(/name="_csrf" value="([^"]+)"/)
    if (token) this.csrf = token[1]!
    return { status: res.statusCode, headers: res.headers, body: res.body, location: res.headers.location as string | undefined }
  }

  async post(url: string, form: Record<string, string>, options: { csrf?: string | null } = {}): Promise<Page> {
    const csrf = options.csrf === undefined ? this.csrf : options.csrf
    const body = new URLSearchParams({ ...(csrf === null ? {} : { _csrf: csrf }), ...form }).toString()
    const res = await this.app.inject({ method: 'POST', url, payload: body, remoteAddress: this.ip,
      headers: { cookie: this.cookieHeader(), accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' } })
    this.remember(res.headers)
    const token = res.body.match(/name="_csrf" value="([^"]+)"/)
    if (token) this.csrf = token[1]!
    return { status: res.statusCode, headers: res.headers, body: res.body, location: res.headers.location as string | undefined }
  }

  /** Follows a 303 like a browser. */
  async follow(page: Page): Promise<Page> {
    if (page.status !== 303 && page.status !== 302) return page
    return this.get(page.location!)
  }

  async signIn(upn: string, password = 'correct horse battery'): Promise<Page> {
    await this.get('/login')
    return this.post('/login', { upn, password })
  }
}

/** Visible text of an HTML page, for asserting on what a person reads. */
export function text(html: string): string {
  return html.replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/&quot;|&#34;/g, '"').replace(/&amp;/g, '&').replace(/\s+/g, ' ').trim()
}
