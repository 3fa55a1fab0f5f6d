// Auditors replay token events: a scripted token life, then its timeline, its state as of each step,
// an export checked offline, tampering found, and the audit index rebuilt from scratch.
import t from 'tap'
import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { activateToken, assignToken, disableToken, enableToken, revokeToken, unassignToken, unlockToken, verifyCode } from '../../src/commands/tokens.js'
import { grantRole } from '../../src/commands/users.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { tessera } from '../helpers/cli.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { assertRebuildEqual } from '../helpers/rebuild.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const { app, database, clock } = await testApp(t)
const T0 = Math.floor(Date.UTC(2026, 10, 22, 9, 0, 0) / 1000)
const at = (s: number) => { clock.now = new Date((T0 + s) * 1000) }
const meta = (actor: { type: 'admin' | 'user'; id: string } = { type: 'admin', id: 'carol' }) => metadata({ actor, correlationId: 'scenario', sourceIp: '192.0.2.7', userAgent: 'audit-test' })

// The scenario, with the clock moving so each step has its own instant.
at(0)
const alice = await addUser(app, 'alice@example.com')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
at(30)
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Token2 C202', code: totpAt(SEED_HEX, T0 + 30) }, meta({ type: 'user', id: alice.userId }))
at(60)
await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 60), relyingApplication: 'payroll' }, meta({ type: 'user', id: alice.userId }))
await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 60) }, meta({ type: 'user', id: alice.userId })).catch(() => {})
at(90)
for (let i = 0; i < 10; i++) await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: String(100000 + i) }, meta({ type: 'user', id: alice.userId })).catch(() => {})
at(120)
await unlockToken(app.commands, { serial: '8659623756140' }, meta())
at(150)
await verifyCode(app.commands, { serial: '8659623756140', userId: alice.userId, code: totpAt(SEED_HEX, T0 + 150) }, meta({ type: 'user', id: alice.userId }))
at(180)
await revokeToken(app.commands, { serial: '8659623756140', reason: 'lost' }, meta())
// The replayed code counts as a failure: the 9th wrong code makes ten and locks; the 10th meets the lock.
const expected = ['TokenImported', 'TokenAssigned', 'TokenRenamed', 'TokenActivated', 'OtpVerified', 'OtpRejected',
  ...Array(9).fill('OtpRejected'), 'TokenLocked', 'OtpRejected', 'TokenUnlocked', 'OtpVerified', 'TokenRevoked', 'TokenSecretDestroyed']
/** Events record the database's time; "as of" questions use their positions and recorded times. */
const recorded = (await sql<{ type: string; position: string; recorded_at: Date }>`
  select type, position, recorded_at from events where stream_id = 'token-8659623756140' order by stream_version`.execute(database.db)).rows
const positionOf = (type: string, nth = 0) => Number(recorded.filter((r) => r.type === type)[nth]!.position)
const timeOf = (type: string) => recorded.find((r) => r.type === type)!.recorded_at
await app.projections.catchUp()

const auditor = await createApiKey(app.commands, { role: 'auditor', name: 'audit robot' }, metadata())
const adminKey = await createApiKey(app.commands, { role: 'admin', name: 'admin robot' }, metadata())
const api = (url: string, key = auditor.key) => app.inject({ url, headers: { authorization: `Bearer ${key}` } })

t.test('the token timeline lists exactly the scenario, in order, in plain language', async (t) => {
  const res = await api('/audit/api/events?serial=8659623756140&limit=500')
  t.equal(res.statusCode, 200)
  const events = res.json().events as { type: string; line: string; actor: { id: string }; sourceIp: string; userAgent: string; correlationId: string }[]
  t.same(events.map((e) => e.type), expected)
  t.equal(events[3]!.line, `alice@example.com activated hardware token 8659623756140 (time step ${Math.floor((T0 + 30) / 30)}, drift 0)`)
  t.equal(events[4]!.line, `alice@example.com proved possession of hardware token 8659623756140 for payroll (time step ${Math.floor((T0 + 60) / 30)}, drift 0)`)
  t.equal(events[5]!.line, 'alice@example.com was refused by hardware token 8659623756140: a code already used')
  t.match(events[15]!.line, /^hardware token 8659623756140 locked after 10 wrong codes, until 2026-11-22T09:16:30/)
  t.equal(events[16]!.line, 'alice@example.com was refused by hardware token 8659623756140: the token is locked')
  t.equal(events[17]!.line, 'admin carol unlocked hardware token 8659623756140')
  t.equal(events[19]!.line, 'admin carol revoked hardware token 8659623756140 (lost)')
  t.match(events[19], { sourceIp: '192.0.2.7', userAgent: 'audit-test', correlationId: 'scenario' })

  const paged: string[] = []
  let after = 0
  for (;;) {
    const page = (await api(`/audit/api/events?serial=8659623756140&limit=7&after=${after}`)).json()
    paged.push(...page.events.map((e: { type: string }) => e.type))
    if (!page.next) break
    after = page.next
  }
  t.same(paged, expected, 'paging gives the same list')
  const byType = (await api('/audit/api/events?type=TokenLocked,TokenUnlocked')).json().events.map((e: { type: string }) => e.type)
  t.same(byType, ['TokenLocked', 'TokenUnlocked'], 'filtered by type')
  const byUser = (await api('/audit/api/events?user=alice@example.com&limit=500')).json().events.map((e: { type: string }) => e.type)
  t.ok(byUser.includes('UserRegistered') && byUser.includes('OtpVerified'), "the user's timeline has their account and token events")
  const byApp = (await api('/audit/api/events?app=payroll')).json().events.map((e: { type: string }) => e.type)
  t.same(byApp, ['OtpVerified'], "the relying application's timeline")
  const range = (await api(`/audit/api/events?serial=8659623756140&from=${timeOf('TokenUnlocked').toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`)).json()
  t.same(range.events.map((e: { type: string }) => e.type), ['TokenUnlocked', 'OtpVerified', 'TokenRevoked', 'TokenSecretDestroyed'], 'a time range')
})

t.test("the token's state as of each step is folded from its events", async (t) => {
  const state = async (position: number) => (await api(`/audit/api/tokens/8659623756140/state?position=${position}`)).json().state
  t.match(await state(positionOf('TokenAssigned')), { status: 'assigned', userId: alice.userId, lastStep: null })
  t.match(await state(positionOf('TokenActivated')), { status: 'active', name: 'Token2 C202', lastStep: Math.floor((T0 + 30) / 30) })
  t.match(await state(positionOf('OtpRejected')), { status: 'active', lastStep: Math.floor((T0 + 60) / 30), failures: 1 })
  t.match(await state(positionOf('TokenLocked')), { failures: 0, lockCount: 1, lockedUntil: new Date((T0 + 90 + 900) * 1000).toISOString() })
  t.match(await state(positionOf('TokenUnlocked')), { lockedUntil: null, failures: 0, lockCount: 0 })
  t.match(await state(positionOf('TokenSecretDestroyed')), { status: 'revoked', seedFingerprint: null })
  const byTime = (await api(`/audit/api/tokens/8659623756140/state?at=${timeOf('TokenRevoked').toISOString()}`)).json().state
  t.equal(byTime.status, 'revoked', 'by instant too')
  t.equal((await api(`/audit/api/tokens/8659623756140/state?at=${new Date((T0 - 60) * 1000).toISOString()}`)).statusCode, 404, 'before it existed')
  t.equal((await api('/audit/api/tokens/8659623756140/state?at=yesterday')).statusCode, 400)
  const secret = await database.db.selectFrom('token_secrets').selectAll().where('serial', '=', '8659623756140').executeTakeFirst()
  t.equal(secret, undefined, 'the revoked seed is destroyed; the history above still replays')
})

t.test('the export round-trips: every event in order, each hash checked offline', async (t) => {
  const res = await api('/audit/api/export?format=jsonl')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /ndjson/)
  const lines = res.body.trim().split('\n').map((l) => JSON.parse(l))
  const stored = (await sql<{ position: string; hash: Buffer }>`select position, hash from events order by position`.execute(database.db)).rows
  t.same(lines.map((l) => l.position), stored.map((r) => Number(r.position)), 'every event, in position order')
  const last = new Map<string, string>()
  let checked = 0
  const wrongBytes: string[] = []
  for (const l of lines) {
    const hash = createHash('sha256').update(Buffer.from(l.previousHash, 'hex')).update(Buffer.from(l.bytes, 'utf8')).digest('hex')
    if (hash !== l.hash) t.fail(`hash of ${l.streamId} v${l.streamVersion}`)
    if ((last.get(l.streamId) ?? '') !== l.previousHash) t.fail(`chain of ${l.streamId} v${l.streamVersion}`)
    const [streamId, version, type, data, meta, time] = JSON.parse(l.bytes)
    if (JSON.stringify([streamId, version, type, data, meta, time]) !== JSON.stringify([l.streamId, l.streamVersion, l.type, l.data, l.metadata, l.recordedAt])) {
      wrongBytes.push(`${l.streamId} v${l.streamVersion}`)
    }
    last.set(l.streamId, l.hash)
    checked++
  }
  t.equal(checked, stored.length)
  t.same(wrongBytes, [], 'the hashed bytes say what the exported fields say')
  t.same(lines.filter((l) => l.streamId === 'token-8659623756140').map((l) => l.type), expected)
  t.notOk(res.body.includes(SEED_B32) || res.body.includes(SEED_HEX), 'no seed in the export')
  const csv = await api('/audit/api/export?format=csv&stream=token-8659623756140')
  const rows = csv.body.trim().split('\n')
  t.equal(rows[0], 'position,tx_id,stream_id,stream_version,type,recorded_at,data,metadata,hash,previous_hash,bytes')
  t.equal(rows.length, expected.length + 1)
})

t.test('the CLI replays a stream with its state after each event, and exports', async (t) => {
  const replay = await tessera(['audit', 'replay', '--stream', 'token-8659623756140', '--until', timeOf('TokenUnlocked').toISOString()], { DATABASE_URL: database.url })
  t.equal(replay.code, 0, replay.stderr)
  const eventLines = replay.stdout.split('\n').filter((l) => l.startsWith('v'))
  t.ok(eventLines.length >= expected.indexOf('TokenUnlocked') + 1 && eventLines.length < expected.length, 'events up to the instant')
  t.match(replay.stdout, /TokenUnlocked: admin carol unlocked hardware token 8659623756140\n  state: \{.*"lockedUntil":null/)
  const exported = await tessera(['audit', 'export', '--format', 'jsonl', '--stream', 'token-8659623756140'], { DATABASE_URL: database.url })
  t.equal(exported.stdout.trim().split('\n').length, expected.length)
  const byName = await tessera(['audit', 'replay', '--stream', 'alice@example.com'], { DATABASE_URL: database.url })
  t.equal(byName.code, 0, byName.stderr)
  t.match(byName.stdout, /^v1 #\d+ \S+ UserRegistered: .* added user alice@example\.com/, "a user's principal name stands for their stream")
  const bad = await tessera(['audit', 'replay', '--stream', 'token-8659623756140', '--until', 'soon'], { DATABASE_URL: database.url })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--until must be a date/)
  const far = await tessera(['audit', 'export', '--from', '+010000-01-01T00:00:00Z'], { DATABASE_URL: database.url })
  t.equal(far.code, 2, 'a year past 9999 is refused')
  t.match(far.stderr, /--from must be a date and time like 2026-11-22T10:00:00Z, not "\+010000-01-01T00:00:00Z"/)
  t.equal(far.stdout, '')
})

t.test('a tampered event is found and located', async (t) => {
  t.same((await api('/audit/api/verify')).json().breaks, [])
  await database.db.transaction().execute(async (trx) => {
    await sql`alter table events disable trigger events_immutable`.execute(trx)
    await sql`update events set data = jsonb_set(data, '{reason}', '"retired"') where stream_id = 'token-8659623756140' and type = 'TokenRevoked'`.execute(trx)
    await sql`alter table events enable trigger events_immutable`.execute(trx)
  })
  const report = (await api('/audit/api/verify')).json()
  t.same(report.breaks.map((b: { streamId: string; version: number; problem: string }) => [b.streamId, b.version, b.problem]),
    [['token-8659623756140', expected.indexOf('TokenRevoked') + 1, 'changed']])
})

t.test("a user's timeline holds everything done to their tokens, and nothing done after a token left them", async (t) => {
  const ofUser = async (upn: string, serial: string) =>
    ((await api(`/audit/api/events?user=${encodeURIComponent(upn)}&serial=${serial}&limit=500`)).json().events as { type: string }[]).map((e) => e.type)
  // From its assignment on (it was imported, into the inventory, just before).
  t.same(await ofUser('alice@example.com', '8659623756140'), expected.slice(1), 'the lock, unlock, revocation and destroyed seed among them')
  const bob = await addUser(app, 'bob@example.com')
  await importEntra(app, [`,8659623756142,${SEED_B32},30,Token2,C202`])
  await assignToken(app.commands, { serial: '8659623756142', userId: alice.userId }, meta())
  await disableToken(app.commands, { serial: '8659623756142' }, meta())
  await unassignToken(app.commands, { serial: '8659623756142' }, meta())
  await assignToken(app.commands, { serial: '8659623756142', userId: bob.userId }, meta())
  await enableToken(app.commands, { serial: '8659623756142' }, meta())
  await disableToken(app.commands, { serial: '8659623756142' }, meta())
  await app.projections.catchUp()
  t.same(await ofUser('alice@example.com', '8659623756142'), ['TokenAssigned', 'TokenDisabled', 'TokenUnassigned'])
  t.same(await ofUser('bob@example.com', '8659623756142'), ['TokenAssigned', 'TokenEnabled', 'TokenDisabled'])
})

t.test('the audit index rebuilt from scratch equals the live one', async (t) => {
  await app.projections.catchUp()
  await assertRebuildEqual(t, database.db, database.store, ['audit_index', 'event_type_stats'])
})

t.test('only auditors: keys with the auditor role, or auditor users who entered a code', async (t) => {
  t.equal((await app.inject('/audit/api/events')).statusCode, 401)
  t.equal((await api('/audit/api/events', adminKey.key)).statusCode, 403)
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  const refused = await b.get('/audit')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Auditors only/)

  await addUser(app, 'dora@example.com')
  const dora = await app.db.selectFrom('users').select('id').where('upn', '=', 'dora@example.com').executeTakeFirstOrThrow()
  await grantRole(app.commands, 'dora@example.com', 'auditor', metadata())
  await importEntra(app, [`dora@example.com,8659623756141,${SEED_B32},30,Token2,C202`])
  at(300)
  await activateToken(app.commands, { serial: '8659623756141', userId: dora.id, name: 'Dora key', code: totpAt(SEED_HEX, T0 + 300) }, metadata())
  const auditorBrowser = new Browser(app)
  await auditorBrowser.signIn('dora@example.com')
  const first = await auditorBrowser.get('/audit?serial=8659623756140')
  t.equal(first.location, '/security-info/verify', 'a code first')
  at(330)
  t.match(text((await auditorBrowser.get('/security-info/verify')).body), /Before you open the audit pages, enter the code/)
  const verified = await auditorBrowser.post('/security-info/verify', { serial: '8659623756141', code: totpAt(SEED_HEX, T0 + 330) })
  t.equal(verified.location, '/audit?serial=8659623756140', 'then back to the audit page')
  const page = await auditorBrowser.get(verified.location!)
  t.equal(page.status, 200)
  t.match(text(page.body), /admin carol revoked hardware token 8659623756140/)
  t.match(text(page.body), /user alice@example\.com/, 'a user actor by name')
  t.match(page.body, /href="\/audit\/api\/export\?stream=token-8659623756140&amp;format=jsonl"/, 'an export of what the page shows')
  t.match(page.body, /href="\/audit\/api\/export\?stream=token-8659623756140&amp;format=csv"/)
  // Newest first, with the total, the filters in words, and pages in both directions.
  const count = expected.length
  const newest = await auditorBrowser.get('/audit?serial=8659623756140&limit=5')
  t.match(text(newest.body), new RegExp(`${count} events matching token 8659623756140; showing 5, newest first\\.`))
  const typesOn = (body: string) => [...body.matchAll(/\((\w+), <a href="\/audit\/tokens\/8659623756140">token-8659623756140<\/a> v(\d+)\)/g)].map((m) => Number(m[2]))
  t.same(typesOn(newest.body), [count, count - 1, count - 2, count - 3, count - 4], 'the newest five, newest first')
  t.notMatch(newest.body, /Newer events/, 'nothing newer than the first page')
  const olderHref = /href="(\/audit\?[^"]+)">Older events/.exec(newest.body)![1]!.replace(/&amp;/g, '&')
  const older = await auditorBrowser.get(olderHref)
  t.same(typesOn(older.body), [count - 5, count - 6, count - 7, count - 8, count - 9].filter((v) => v > 0), 'then the five before them')
  const newerHref = /href="(\/audit\?[^"]+)">Newer events/.exec(older.body)![1]!.replace(/&amp;/g, '&')
  t.same(typesOn((await auditorBrowser.get(newerHref)).body), typesOn(newest.body), 'and back')
  const tokenPage = await auditorBrowser.get(`/audit/tokens/8659623756140?at=${encodeURIComponent(timeOf('TokenLocked').toISOString())}`)
  t.match(text(tokenPage.body), /Locked until 22 Nov 2026, 09:16 UTC/)
  t.match(text(tokenPage.body), /Locks since the last accepted code 1/)
  t.match(text(tokenPage.body), /Owner alice@example\.com/)
  t.match(text(tokenPage.body), /Events up to /)
  t.notMatch(text(tokenPage.body), /unlocked/, 'no event after the instant')
  const disabled = await auditorBrowser.get('/audit/tokens/8659623756142')
  t.match(text(disabled.body), /Status \w+, disabled by an admin/)
  t.match(text(disabled.body), /Owner bob@example\.com/)
  const badDate = await auditorBrowser.get('/audit?serial=8659623756140&from=yesterday')
  t.equal(badDate.status, 400)
  t.match(text(badDate.body), /from must be a date and time like 2026-11-22T10:00:00Z/, 'the reason on the page')
  t.match(badDate.body, /id="from" name="from" value="yesterday"/, 'the form as it was filled in')
  t.match(badDate.body, /id="serial" name="serial" value="8659623756140"/)
  const aliceStream = await auditorBrowser.get('/audit?stream=alice%40example.com')
  t.match(text(aliceStream.body), /added user alice@example\.com/, 'the audit pages take a principal name for a stream too')
  const byActor = await auditorBrowser.get('/audit?serial=8659623756140&actor=alice%40example.com')
  const actors = [...byActor.body.matchAll(/<td>(user|admin|system|api-key|cli)[^<]*<\/td>/g)].map((m) => m[0])
  t.ok(actors.length > 5 && actors.every((a) => a === '<td>user alice@example.com</td>'), `only alice's actions (${actors.length})`)
  const badAt = await auditorBrowser.get('/audit/tokens/8659623756140?at=soon')
  t.equal(badAt.status, 400)
  t.match(text(badAt.body), /at must be a date and time/)
  t.match(text(badAt.body), /State now/, 'and the state now')
  const none = await auditorBrowser.get('/audit/tokens/0000000000000')
  t.equal(none.status, 404)
  t.match(text(none.body), /No token with serial 0000000000000 has any event/)
  const verifyPage = await auditorBrowser.get('/audit/verify')
  t.match(text(verifyPage.body), `stream token-8659623756140 version ${expected.indexOf('TokenRevoked') + 1}: the stored event does not match its hash`)
})
