// /metrics: absent unless configured; behind its bearer token on the gateway's listener, or on a listener of
// its own. What the gateway did shows in it: requests by route, verifications by method and result, locks,
// password checks, delivery attempts by provider, appends, imports; the projections' lag and the pool.
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import t from 'tap'
import { exportEventsTo } from '../../src/audit/export.js'
import { setUserContact } from '../../src/commands/contacts.js'
import { setPolicy } from '../../src/commands/policies.js'
import { activateToken, verifyCode } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { requestActivationCode } from '../../src/methods/authenticator-app/activation-codes.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { totpAt } from '../helpers/oathtool.js'
import { received, smtpPeer } from '../helpers/peers.js'
import { seedOf } from '../helpers/seeds.js'

/** A sample's value in the text format, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const [head, value] = [line.slice(0, line.lastIndexOf(' ')), line.slice(line.lastIndexOf(' ') + 1)]
    if (head.split('{')[0] !== name) continue
    if (wanted.every((w) => head.includes(w))) return Number(value)
  }
  return 0
}

t.test('not configured: there is no /metrics', async (t) => {
  const { app } = await testApp(t)
  t.equal((await app.inject('/metrics')).statusCode, 404)
})

t.test('behind its bearer token: what the gateway did, counted', async (t) => {
  const token = randomBytes(24).toString('hex')
  const mail = await smtpPeer(t)
  const { app, clock } = await testApp(t, { TESSERA_METRICS_TOKEN: token,
    TESSERA_DELIVERY_PROVIDERS: JSON.stringify([{ name: 'mail', type: 'smtp', url: mail.url, from: 'no-reply@example.com' }]) })
  const scrape = async () => {
    const res = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return res.body
  }
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${token}x` } })).statusCode, 401)
  const before = await scrape()

  const unix = () => Math.floor(clock.now.getTime() / 1000)
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, lockThreshold: 2 } }, metadata())
  const mia = await addUser(app, 'mia@example.com')
  await importEntra(app, [`mia@example.com,MI-1,${seedOf('MI-1').b32},30,Token2,C202`])
  await activateToken(app.commands, { serial: 'MI-1', userId: mia.userId, name: 'Fob', code: totpAt(seedOf('MI-1').hex, unix()) }, metadata())
  clock.now = new Date(clock.now.getTime() + 30_000)
  await verifyCode(app.commands, { serial: 'MI-1', userId: mia.userId, code: totpAt(seedOf('MI-1').hex, unix()) }, metadata())
  const wrong = String((Number(totpAt(seedOf('MI-1').hex, unix() + 600)) + 1) % 1_000_000).padStart(6, '0')
  for (let i = 0; i < 2; i++) await verifyCode(app.commands, { serial: 'MI-1', userId: mia.userId, code: wrong }, metadata()).catch(() => {})
  await app.inject({ method: 'POST', url: '/activate', headers: { 'content-type': 'application/json' }, payload: { activationCode: 'x', username: 'x', password: 'x' } })
  await setUserContact(app.commands, { upn: 'mia@example.com', email: 'mia@mail.example.com' }, metadata())
  await requestActivationCode(app.commands, { userId: mia.userId, by: 'admin', delivery: 'email', activateUrl: 'http://x/activate' }, metadata())
  app.delivery.wake()
  await received(mail.messages, 1)
  await new Promise((r) => setTimeout(r, 200))
  let exported = 0
  await exportEventsTo(app.db, {}, 'jsonl', new Writable({ write(chunk: Buffer, _encoding, done) { exported += chunk.length; done() } }))

  const after = await scrape()
  const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels)
  t.equal(delta('tessera_verifications_total', { method: 'hardware', result: 'accepted' }), 1, 'a code accepted')
  t.equal(delta('tessera_verifications_total', { method: 'hardware', result: 'WrongCode' }), 1, 'a wrong code')
  t.equal(delta('tessera_verifications_total', { method: 'hardware', result: 'TokenLocked' }), 1, 'the second wrong code locked it')
  t.equal(delta('tessera_token_locks_total', { method: 'hardware' }), 1)
  t.equal(delta('tessera_import_rows_total', { format: 'entra', result: 'imported' }), 1)
  t.equal(delta('tessera_delivery_attempts_total', { provider: 'mail', result: 'accepted' }), 1, 'the activation code handed to the mail server')
  t.ok(delta('tessera_http_request_duration_seconds_count', { method: 'POST', route: '/activate', status: '422' }) >= 1, 'a request, by its route')
  t.ok(delta('tessera_event_append_duration_seconds_count', { path: 'token', outcome: 'ok' }) >= 3, 'appends on the token path')
  t.ok(delta('tessera_event_append_duration_seconds_count', { path: 'store', outcome: 'ok' }) >= 1, 'and on the store path')
  t.equal(delta('tessera_export_bytes_total'), exported, 'an export\'s bytes, as its destination took them')
  t.ok(exported > 0)
  t.equal(sample(after, 'tessera_exports_running', {}), 0, 'and none running now')
  t.match(after, /tessera_projection_lag_events\{projection="audit_index"\} \d+/)
  t.match(after, /tessera_projection_lag_seconds\{projection="audit_index"\} [\d.e-]+/)
  t.match(after, /tessera_db_pool_connections\{state="total"\} \d+/)
  t.match(after, /tessera_process_resident_memory_bytes \d+/)
  t.notMatch(after, /\/security-info\/methods\/MI-1|mia@example\.com/, 'labels are route patterns: no serial, no user')
})

t.test('on a listener of its own; not on the gateway', async (t) => {
  const port = await freePort()
  const { app } = await testApp(t, { TESSERA_METRICS_PORT: String(port) })
  t.equal((await app.inject('/metrics')).statusCode, 404, 'not on the public listener')
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(res.status, 200)
  t.match(await res.text(), /tessera_http_request_duration_seconds/)
})
