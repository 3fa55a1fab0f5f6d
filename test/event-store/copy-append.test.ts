// The COPY append (copy-append.ts) and the jsonb text form it hashes (canonical-json.ts): the same events,
// versions and hash chains as appends through the row trigger, checked by the auditors' verification;
// a refusal writes nothing, and the trigger hashes every other insert again.
import t from 'tap'
import { sql } from 'kysely'
import type pg from 'pg'
import { withConnection } from '../../src/db/database.js'
import { canonicalJson, numericText } from '../../src/event-store/canonical-json.js'
import { copyNewStreams, type NewStream } from '../../src/event-store/copy-append.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t)
const meta = metadata({ actor: { type: 'admin', id: 'ad"min\\é\ttab' }, sourceIp: '192.0.2.1', userAgent: 'curl/8 ✓\nsecond line' })

async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withConnection(db, async (client) => {
    await client.query('begin')
    const result = await fn(client)
    await client.query('commit')
    return result
  })
}

const copy = (streams: NewStream[]) => inTransaction((client) => copyNewStreams(client, streams, meta))

async function count(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n)
}

t.test("jsonb's text form, as PostgreSQL prints it", async (t) => {
  const values: unknown[] = [
    {},
    [],
    { z: 1, a: 'x', bb: null, c: true, d: false },
    { nested: { b: [1, null, true, [], {}], a: {} }, list: [{ y: 2, x: 1 }] },
    { quote: 'say "hi" \\ back\\slash', ctl: '\b\f\n\r\t\u0001\u001f\u007f', uni: 'é ✓ 😀 \u2028 \u00a0' },
    { 'é': 1, 'z': 2, 'ab': 3, 'ü': 4, '✓': 5, '😀': 6, 'aé': 7, '': 8 },
    { n: [0, -0, 1.5, -2.25, 0.1, 1 / 3, 1e21, 1.5e-7, -1e-7, 123456789012345680000, 2 ** 53, 5e-324, 1.7976931348623157e308] },
    { skipped: undefined, f: () => 1, kept: 1, arr: [undefined, () => 1, NaN, Infinity] },
    { date: new Date(Date.UTC(2026, 10, 23, 5, 6, 7, 8)) },
  ]
  for (const [i, value] of values.entries()) {
    const printed = (await sql<{ text: string }>`select ${JSON.stringify(value)}::jsonb::text as text`.execute(db)).rows[0]!.text
    t.equal(canonicalJson(value), printed, `value ${i + 1}`)
    const again = (await sql<{ text: string }>`select ${canonicalJson(value)!}::jsonb::text as text`.execute(db)).rows[0]!.text
    t.equal(again, printed, 'and PostgreSQL reads it back to the same text')
  }
  t.equal(numericText(1e-7), '0.0000001')
  t.throws(() => canonicalJson({ n: 1n }), TypeError, 'a bigint has no JSON form')
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.throws(() => canonicalJson(cycle), TypeError, 'nor has a cycle')
})

t.test('new streams of one and two events: the hashes are the ones the trigger gives the same events', async (t) => {
  // Data whose canonical text differs from JSON.stringify's: key order, escapes, numbers, nesting, Unicode.
  const data = { z: 1, a: 'quote " backslash \\ tab \t ✓ 😀', n: 1.5, big: 1e21, small: 1.5e-7, nested: { b: [1, null, true], a: {} } }
  const assigned = { serial: 'a"1', userId: 'u-1', by: 'import' }
  const at = await copy([
    { streamId: 'token-a"1', events: [{ type: 'TokenImported', data }, { type: 'TokenAssigned', data: assigned }] },
    { streamId: 'token-b', events: [{ type: 'TokenImported', data: { serial: 'b' } }] },
  ])
  t.match(at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'the recorded time comes back as the hashed bytes spell it')
  // The same events through the trigger, on a twin stream.
  await store.append('twin-a"1', 'no-stream', [{ type: 'TokenImported', data }, { type: 'TokenAssigned', data: assigned }], meta)
  const report = await verifyChains(db)
  t.same(report.breaks, [], 'every chain verifies')
  t.equal(report.events, 5)
  const rows = (await sql<{ stream_id: string; stream_version: number; type: string; at: string }>`
    select stream_id, stream_version, type, to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at
    from events where stream_id like 'token-%' order by position`.execute(db)).rows
  t.same(rows.map((r) => [r.stream_id, r.stream_version, r.type, r.at]),
    [['token-a"1', 1, 'TokenImported', at], ['token-a"1', 2, 'TokenAssigned', at], ['token-b', 1, 'TokenImported', at]],
    'in the given order, recorded at the time returned')
  const stored = await store.readStream('token-a"1')
  t.same(stored[0]!.data, data)
  t.same(stored[0]!.metadata, meta)
  t.same(stored[1]!.data, assigned)
})

t.test('a stream that exists fails the whole call and writes nothing', async (t) => {
  const before = await count()
  const error = await copy([
    { streamId: 'token-new', events: [{ type: 'TokenImported', data: {} }] },
    { streamId: 'token-b', events: [{ type: 'TokenImported', data: {} }] },
  ]).catch((e: unknown) => e)
  t.equal((error as { code?: string }).code, '23505', 'a second version 1 meets the unique key')
  t.equal(await count(), before)
})

t.test('a bad event or stream id is refused before anything is sent', async (t) => {
  const before = await count()
  await t.rejects(copy([{ streamId: 'token-x', events: [{ type: 'not pascal', data: {} }] }]), /PascalCase/)
  await t.rejects(copy([{ streamId: 'token x', events: [{ type: 'TokenImported', data: {} }] }]), /stream id/i)
  await t.rejects(copy([{ streamId: 'token-y', events: [] }]), /1 to 10000 events/)
  await t.rejects(copy([{ streamId: 'token-z', events: [{ type: 'TokenImported', data: { s: 'nul \u0000' } }] }]), /NUL/)
  t.equal(await count(), before)
})

t.test('after the COPY the trigger computes hashes again, in the same transaction', async (t) => {
  await inTransaction(async (client) => {
    await copyNewStreams(client, [{ streamId: 'token-d', events: [{ type: 'TokenImported', data: {} }] }], meta)
    await client.query(`insert into events (stream_id, stream_version, type, data, metadata, hash)
                        values ('token-d', 2, 'TokenAssigned', '{}', $1::jsonb, '\\x00')`, [JSON.stringify(meta)])
  })
  const [, second] = await store.readStream('token-d')
  t.not(second!.hash!.toString('hex'), '00', 'the given hash was replaced by the chained one')
  t.same((await verifyChains(db)).breaks, [])
})
