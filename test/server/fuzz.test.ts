// Bad input on every route, before and after sign-in: thousands of generated requests (NUL bytes, repeated
// keys, arrays and objects where text is due, oversized numbers and fields, wrong content types, odd path
// parameters). Every answer is a 4xx or a redirect, never a 500, and no event is written.
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { sql } from 'kysely'
import { loadConfig, serverOptions } from '../../fastify.config.js'
import app from '../../src/app.js'
import { createApiKey } from '../../src/commands/api-keys.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { metadata, testDatabase } from '../helpers/database.js'
import { TEST_DATA_DIR } from '../helpers/embedded-server.js'

const database = await testDatabase(t)
await fs.mkdir(TEST_DATA_DIR, { recursive: true })
const dataDir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'fuzz-'))
t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
const config = loadConfig({ DATABASE_URL: database.url, TESSERA_DATA_DIR: dataDir, TESSERA_MASTER_KEY: randomBytes(32).toString('base64'), LOG_LEVEL: 'silent' })
const gateway = Fastify(serverOptions(config))
// Every route the gateway serves, as registered.
const routes: { method: string; url: string }[] = []
gateway.addHook('onRoute', (route) => {
  for (const method of [route.method].flat()) if (method !== 'HEAD' && method !== 'OPTIONS') routes.push({ method, url: route.url })
})
const clock = { now: new Date() }
await gateway.register(app, { config, databaseUrl: database.url, now: () => clock.now })
await gateway.ready()
t.teardown(() => gateway.close())

await addAdmin(gateway, clock)
const admin = await signedInAdmin(gateway, clock)
const key = await createApiKey(gateway.commands, { name: 'fuzz', role: 'admin' }, metadata())
const auditKey = await createApiKey(gateway.commands, { name: 'fuzz-audit', role: 'auditor' }, metadata())
const csrf = /name="_csrf" value="([^"]+)"/.exec((await admin.get('/security-info')).body)![1]!
const events = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)

const PARAMS = ['%00', 'x%00y', 'a'.repeat(5000), '..%2F..%2Fetc', '%E2%80%AE', 'nobody%40example.com', '12345678901234567890']
const QUERIES = ['a=%00', 'serial=1&serial=2', 'returnTo[x]=1', 'q=%00', 'after=%00', 'format=%00', 'client_id=%00', 'redirect_uri=%00&client_id=x',
  'response_type=code&client_id=a%00', `state=${'x'.repeat(70_000)}`, 'limit=1e309', 'until=%00', 'stream=token-%00', 'type=%00', 'from=99999-99-99']
const FORMS = ['_csrf=CSRF&code=%00', '_csrf=CSRF&code=1&code=2', '_csrf=CSRF&name[x]=1', `_csrf=CSRF&serial=${'9'.repeat(5000)}`, '_csrf=CSRF&method=%00',
  '_csrf=CSRF&upn=%00&password=%00', '_csrf=CSRF&validDays=1e309', '_csrf=CSRF&delivery=%00', 'code=123456']
const JSONS = ['{"code":["a"]}', '{"name":{"$gt":""}}', '{"validDays":1e309}', '{"user":null}', '[1,2,3]', '"text"', '{"settings":{"methods":[{}]}}',
  '{"activationCode":["x"],"username":{},"password":1}', '{', '{"kind":"\\u0000"}']

function fill(url: string, value: string): string {
  return url.replace(/:[A-Za-z]+/g, value).replace(/\*/g, value)
}

/** The OpenID provider's endpoints, behind the routes that hand /oidc/* to it. */
const OIDC = ['auth', 'token', 'session/end', 'me', 'jwks', 'token/revocation', 'token/introspection', '.well-known/openid-configuration', 'session/end/confirm']

interface Who { name: string; headers: () => Record<string, string> }
const anonymous: Who = { name: 'anonymous', headers: () => ({}) }
const staff: Who = { name: 'signed-in admin', headers: () => ({ cookie: admin.cookieHeader() }) }
const apiKey: Who = { name: 'admin API key', headers: () => ({ authorization: `Bearer ${key.key}` }) }
const auditor: Who = { name: 'audit API key', headers: () => ({ authorization: `Bearer ${auditKey.key}` }) }

t.test('no route answers bad input with a 500, and none writes an event', async (t) => {
  const before = await events()
  const failures: string[] = []
  let sent = 0
  const send = async (who: Who, method: string, url: string, payload?: string, type?: string) => {
    const res = await gateway.inject({ method: method as 'GET', url, payload, headers: { ...who.headers(), ...(type ? { 'content-type': type } : {}), accept: sent % 2 ? 'text/html' : 'application/json' } })
    sent++
    if (res.statusCode >= 500) failures.push(`${res.statusCode} ${who.name} ${method} ${url.slice(0, 120)} ${String(payload ?? '').slice(0, 80)}`)
  }
  const seen = new Set<string>()
  // The provider is mounted as middleware, not as routes: its endpoints are added by name.
  const expanded = [...routes, ...OIDC.flatMap((e) => ['GET', 'POST'].map((method) => ({ method, url: `/oidc/${e}` })))]
  for (const route of expanded) {
    if (seen.has(`${route.method} ${route.url}`)) continue
    seen.add(`${route.method} ${route.url}`)
    for (const who of [anonymous, staff, apiKey, auditor]) {
      for (const p of PARAMS) await send(who, route.method, fill(route.url, p))
      for (const q of QUERIES) await send(who, route.method, `${fill(route.url, 'x')}?${q}`)
      if (route.method === 'GET' || route.method === 'DELETE') continue
      for (const f of FORMS) await send(who, route.method, fill(route.url, 'x'), f.replace('CSRF', csrf), 'application/x-www-form-urlencoded')
      for (const j of JSONS) await send(who, route.method, fill(route.url, 'x'), j, 'application/json')
      await send(who, route.method, fill(route.url, 'x'), 'a\u0000b', 'text/plain')
      await send(who, route.method, fill(route.url, 'x'), '<x/>', 'application/xml')
    }
  }
  t.ok(routes.length > 100, `${routes.length} routes`)
  t.ok(sent > 5000, `${sent} requests`)
  t.same(failures, [], 'no 500')
  t.equal(await events(), before, 'no event written')
})
