// The bulk append (tessera_append_events, migration 0009): the same events, versions and hash chains as
// appends through the row trigger, checked by the auditors' verification; refusals write nothing.
import t from 'tap'
import { sql } from 'kysely'
import { appendEventsCall, type EventColumns } from '../../src/event-store/postgres.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t)
const meta = metadata({ actor: { type: 'admin', id: 'ad"min\\é' }, sourceIp: '192.0.2.1', userAgent: 'curl/8 ✓' })

function columns(events: [stream: string, version: number, type: string, data: Record<string, unknown>][]): EventColumns {
  return {
    streamId: events.map((e) => e[0]),
    version: events.map((e) => e[1]),
    type: events.map((e) => e[2]),
    data: events.map((e) => JSON.stringify(e[3])),
  }
}

async function bulk(events: Parameters<typeof columns>[0]): Promise<void> {
  await sql`select ${appendEventsCall(columns(events), JSON.stringify(meta))}`.execute(db)
}

async function count(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n)
}

t.test('new streams of one and two events: the hashes are the ones the trigger gives the same events', async (t) => {
  // Data whose canonical text differs from JSON.stringify's: key order, escapes, numbers, nesting, Unicode.
  const data = { z: 1, a: 'quote " backslash \\ tab \t ✓ 😀', n: 1.50, big: 1e21, nested: { b: [1, null, true], a: {} } }
  await bulk([
    ['token-a"1', 1, 'TokenImported', data],
    ['token-b', 1, 'TokenImported', { serial: 'b' }],
    ['token-a"1', 2, 'TokenAssigned', { serial: 'a"1', userId: 'u-1', by: 'import' }],
  ])
  // The same events through the trigger, on twin streams in one transaction of their own.
  await store.append('twin-a"1', 'no-stream', [{ type: 'TokenImported', data }, { type: 'TokenAssigned', data: { serial: 'a"1', userId: 'u-1', by: 'import' } }], meta)
  const report = await verifyChains(db)
  t.same(report.breaks, [], 'every chain verifies')
  t.equal(report.events, 5)
  const rows = (await sql<{ stream_id: string; stream_version: number; type: string }>`
    select stream_id, stream_version, type from events where stream_id like 'token-%' order by position`.execute(db)).rows
  t.same(rows.map((r) => [r.stream_id, r.stream_version, r.type]),
    [['token-a"1', 1, 'TokenImported'], ['token-b', 1, 'TokenImported'], ['token-a"1', 2, 'TokenAssigned']],
    'versions 1 first, each level in the given order')
  const stored = await store.readStream('token-a"1')
  t.same(stored[0]!.data, data)
  t.same(stored[0]!.metadata, meta)
})

t.test('a later version continues a stream written through the trigger', async (t) => {
  await store.append('token-c', 'no-stream', [{ type: 'TokenImported', data: { serial: 'c' } }], meta)
  await bulk([['token-c', 2, 'TokenAssigned', { serial: 'c', userId: 'u-2', by: 'import' }]])
  t.same((await store.readStream('token-c')).map((e) => e.streamVersion), [1, 2])
  t.same((await verifyChains(db, { streamId: 'token-c' })).breaks, [])
})

t.test('a stream that exists, or a version without its predecessor, fails the whole call and writes nothing', async (t) => {
  const before = await count()
  const existing = await bulk([['token-new', 1, 'TokenImported', {}], ['token-b', 1, 'TokenImported', {}]]).catch((e) => e)
  t.equal(existing.code, '23505', 'a second version 1 meets the unique key')
  const gap = await bulk([['token-new', 1, 'TokenImported', {}], ['token-gap', 2, 'TokenAssigned', {}]]).catch((e) => e)
  t.equal(gap.code, 'TS002')
  t.equal(gap.hint, 'token-gap', 'the stream is named')
  const skipped = await bulk([['token-c', 4, 'TokenAssigned', {}]]).catch((e) => e)
  t.equal(skipped.code, 'TS002', 'version 4 after version 2 is a gap')
  t.equal(await count(), before)
})

t.test('outside the call the trigger computes hashes again, also in the same session', async (t) => {
  await db.connection().execute(async (conn) => {
    await sql`select ${appendEventsCall(columns([['token-d', 1, 'TokenImported', {}]]), JSON.stringify(meta))}`.execute(conn)
    await sql`insert into events (stream_id, stream_version, type, data, metadata, hash)
              values ('token-d', 2, 'TokenAssigned', '{}', ${JSON.stringify(meta)}::jsonb, '\\x00')`.execute(conn)
  })
  const [, second] = await store.readStream('token-d')
  t.not(second!.hash!.toString('hex'), '00', 'the given hash was replaced by the chained one')
  t.same((await verifyChains(db)).breaks, [])
})

t.test('data on more than one line is refused before anything is sent', async (t) => {
  t.throws(() => appendEventsCall({ streamId: ['token-e'], version: [1], type: ['TokenImported'], data: ['{\n}'] }, '{}'), /one line/)
})
