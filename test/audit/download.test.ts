// The export as an HTTP download, over a real connection: the answer's headers, a client that goes
// away, an export that fails before its first line (fastify's error answer) or part way (the download
// breaks off, the gateway goes on), and dates out of range.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { listenOnLoopback, testApp } from '../helpers/app.js'
import { copiesLeft, metadata } from '../helpers/database.js'

const { app, database, logs } = await testApp(t)
const auditor = await createApiKey(app.commands, { role: 'auditor', name: 'audit robot' }, metadata())
const headers = { authorization: `Bearer ${auditor.key}` }
const base = await listenOnLoopback(app)
const meta = JSON.stringify(metadata({ correlationId: 'download-test' }))

// More lines than the export's ring and the sockets' buffers hold, so an export of them is still
// running when a client leaves.
await sql`
  insert into events (stream_id, stream_version, type, data, metadata)
  select 'bulk-' || (g % 10), g / 10 + 1, 'OtpVerified', jsonb_build_object('note', repeat('b', 500)), ${meta}::jsonb
  from generate_series(0, 49999) as g`.execute(database.db)

t.test('a download carries the headers of every answer, and its stream whole and in order', async (t) => {
  const json = await fetch(`${base}/audit/api/events?stream=bulk-3&limit=1`, { headers })
  const res = await fetch(`${base}/audit/api/export?format=jsonl&stream=bulk-3`, { headers })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/x-ndjson')
  t.equal(res.headers.get('content-disposition'), 'attachment; filename="tessera-events.jsonl"')
  const content = new Set(['content-type', 'content-length', 'content-disposition', 'transfer-encoding', 'date', 'etag'])
  const names = (h: Headers) => [...h.keys()].filter((k) => !content.has(k)).sort()
  t.same(names(res.headers), names(json.headers), 'the same headers as a JSON answer (security headers, request id ...)')
  t.ok(res.headers.get('content-security-policy'), 'a content security policy among them')
  const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l))
  t.same(lines.map((l) => l.streamVersion), Array.from({ length: 5000 }, (_, i) => i + 1))
})

t.test('a client that goes away stops the export and its COPY; the next download works', async (t) => {
  const leaving = new AbortController()
  const res = await fetch(`${base}/audit/api/export?format=jsonl`, { headers, signal: leaving.signal })
  const first = await res.body!.getReader().read()
  t.ok(first.value && first.value.length > 0, 'the download started')
  leaving.abort()
  t.equal(await copiesLeft(database.db), 0, 'no COPY left running')
  t.ok(logs.some((l) => l.includes('download given up')), 'the log says the client went away')
  const next = await fetch(`${base}/audit/api/export?format=csv&stream=bulk-7`, { headers })
  t.equal((await next.text()).trim().split('\n').length, 5001, 'a header and every event')
})

t.test('an export that fails before its first line gets the usual error answer', async (t) => {
  // A time the export cannot write (it writes years 1 to 9999, as to_char does): only SQL can store it.
  await sql`
    insert into events (stream_id, stream_version, type, data, metadata, recorded_at)
    values ('far-future', 1, 'TokenRenamed', '{}'::jsonb, ${meta}::jsonb, '10000-01-01T00:00:00Z')`.execute(database.db)
  const res = await fetch(`${base}/audit/api/export?format=jsonl&stream=far-future`, { headers })
  t.equal(res.status, 500)
  const body = await res.json() as { error: string; requestId: string }
  t.equal(body.error, 'Internal Server Error')
  t.ok(body.requestId, 'with the request id to find the cause in the log')
  t.ok(logs.some((l) => l.includes('outside years 1-9999')), 'the cause is in the log')
})

t.test('an export that fails part way breaks the download off; the gateway goes on', async (t) => {
  // 5,000 lines of the stream first (several megabytes, more than the ring), then the time it cannot write.
  await sql`
    insert into events (stream_id, stream_version, type, data, metadata, recorded_at)
    values ('bulk-5', 5001, 'TokenRenamed', '{}'::jsonb, ${meta}::jsonb, '10000-01-01T00:00:00Z')`.execute(database.db)
  const res = await fetch(`${base}/audit/api/export?format=jsonl&stream=bulk-5`, { headers })
  t.equal(res.status, 200, 'the download had started')
  await t.rejects(res.text(), 'the client sees the download break off')
  t.ok(logs.some((l) => l.includes('export failed part way')), 'the log says why')
  t.equal(await copiesLeft(database.db), 0)
  const next = await fetch(`${base}/audit/api/export?format=jsonl&stream=bulk-1`, { headers })
  t.equal((await next.text()).trim().split('\n').length, 5000, 'the next download is whole')
})

t.test('dates outside years 1 to 9999 are refused, with the reason', async (t) => {
  for (const from of ['+010000-01-01T00:00:00Z', '-000001-01-01T00:00:00Z', 'soon']) {
    const res = await fetch(`${base}/audit/api/export?from=${encodeURIComponent(from)}`, { headers })
    t.equal(res.status, 400, from)
    t.match((await res.json() as { message: string }).message, /from must be a date and time like 2026-11-22T10:00:00Z/)
  }
})
