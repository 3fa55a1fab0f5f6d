// The auditors' export against the database it reads: every field of every line as PostgreSQL has it
// (the hashed bytes byte for byte), across many COPY chunks, with filters, a tiny previous-hash cache,
// CSV, a line longer than a slab, a destination that closes early, several exports at once on the
// export thread, one that fails, and a slow destination.
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import net from 'node:net'
import { Writable } from 'node:stream'
import { parse } from 'csv-parse/sync'
import { sql } from 'kysely'
import { ExportDestinationClosed, exportEventsTo, SLAB_BYTES, type ExportFilter, type ExportOptions } from '../../src/audit/export.js'
import { createDatabase } from '../../src/db/database.js'
import { copiesLeft, metadata, testDatabase } from '../helpers/database.js'

const { db, store, url } = await testDatabase(t)

// Seven streams interleaved, 2,940 events with times a millisecond and a microsecond apart: the export
// spans many COPY chunks and rows are cut at chunk ends.
const meta = JSON.stringify(metadata({ correlationId: 'export-test' }))
await sql`
  insert into events (stream_id, stream_version, type, data, metadata, recorded_at)
  select 'token-' || (g % 7), g / 7 + 1, case when g % 3 = 0 then 'OtpRejected' else 'OtpVerified' end,
         jsonb_build_object('serial', (g % 7)::text, 'counter', g, 'note', repeat('n', g % 50)), ${meta}::jsonb,
         '2026-01-01T00:00:00Z'::timestamptz + (g * 1001) * interval '1 microsecond'
  from generate_series(0, 2939) as g`.execute(db)
// Text that needs escaping twice (in the line, then in the hashed bytes as a JSON string), and times
// at the edges of the formatting: before 2000, no fraction, trailing zeros, one microsecond.
const odd = 'token-q"uo\\te'
await store.append(odd, 'no-stream', [
  { type: 'TokenImported', data: { note: 'line\nbreak "quoted" back\\slash é ü 日本 😀 \u0001 \u2028 </script>' } },
  { type: 'TokenRenamed', data: { name: '"\\"' } },
], metadata({ userAgent: 'Mozilla/5.0 "quoted" \\ agent', sourceIp: '2001:db8::1' }))
for (const [i, time] of ['1999-12-31T23:59:59.999999Z', '2000-01-01T00:00:00Z', '2026-11-22T09:00:00.5Z', '1970-01-01T00:00:00.000001Z'].entries()) {
  await sql`
    insert into events (stream_id, stream_version, type, data, metadata, recorded_at)
    values (${odd}, ${3 + i}, 'TokenRenamed', ${JSON.stringify({ name: `n${i}` })}::jsonb, ${meta}::jsonb, ${time}::timestamptz)`.execute(db)
}
// The store refuses such a stream id and type; SQL does not, and the export must still write the bytes
// the trigger hashed (to_json's escapes).
const control = 'ctl-\u0001\t\n\r\b\f\u001f"\\\u007f-é'
for (const version of [1, 2]) {
  await sql`
    insert into events (stream_id, stream_version, type, data, metadata)
    values (${control}, ${version}, ${'Odd\u0002\nType'}, '{"a": "\\u0001 \\n \\\\"}'::jsonb, ${meta}::jsonb)`.execute(db)
}
await sql`
  insert into events (stream_id, stream_version, type, data, metadata)
  select 'token-' || (g % 7), 420 + g / 7 + 1, 'OtpVerified', '{}'::jsonb, ${meta}::jsonb from generate_series(0, 69) as g`.execute(db)

interface Stored {
  position: string
  tx_id: string
  stream_id: string
  stream_version: number
  type: string
  recorded_at: string
  data: string
  metadata: string
  hash: string
  previous_hash: string
  bytes: string
}

/** What the export should say of each event, from the database: the hashed bytes as the trigger makes them. */
async function stored(): Promise<Stored[]> {
  return (await sql<Stored>`
    select e.position::text, e.tx_id::text, e.stream_id, e.stream_version, e.type,
      to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as recorded_at,
      e.data::text as data, e.metadata::text as metadata, encode(e.hash, 'hex') as hash,
      encode(coalesce(p.hash, ''::bytea), 'hex') as previous_hash,
      convert_from(tessera_event_bytes(e.stream_id, e.stream_version, e.type, e.data, e.metadata, e.recorded_at), 'UTF8') as bytes
    from events e left join events p on p.stream_id = e.stream_id and p.stream_version = e.stream_version - 1
    order by e.position`.execute(db)).rows
}

/**
 * A destination that keeps a copy of each chunk, taken when it calls back (`delay` ms after the write):
 * memory the export reused before that would show in the copy.
 */
function collector(chunks: Buffer[], delay = 0, memory?: Set<ArrayBufferLike>): Writable {
  return new Writable({
    highWaterMark: delay ? 1 : undefined,
    write(chunk: Buffer, _encoding, callback) {
      memory?.add(chunk.buffer)
      const done = () => {
        chunks.push(Buffer.from(chunk))
        callback()
      }
      if (delay) setTimeout(done, delay)
      else done()
    },
  })
}

async function exported(filter: ExportFilter, as: 'jsonl' | 'csv', options?: ExportOptions): Promise<string> {
  const chunks: Buffer[] = []
  await exportEventsTo(db, filter, as, collector(chunks), options)
  return Buffer.concat(chunks).toString('utf8')
}

function checkLines(t: Test, text: string, want: Stored[]): void {
  const lines = text.split('\n')
  t.equal(lines.pop(), '', 'the last line ends with a newline')
  t.same(lines.map((l) => JSON.parse(l).position), want.map((w) => Number(w.position)), 'the events wanted, in position order')
  const wrong: string[] = []
  lines.forEach((line, i) => {
    const l = JSON.parse(line)
    const w = want[i]!
    const same = l.txId === w.tx_id && l.streamId === w.stream_id && l.streamVersion === w.stream_version && l.type === w.type
      && l.recordedAt === w.recorded_at && JSON.stringify(l.data) === JSON.stringify(JSON.parse(w.data))
      && JSON.stringify(l.metadata) === JSON.stringify(JSON.parse(w.metadata)) && l.hash === w.hash
      && l.previousHash === w.previous_hash && l.bytes === w.bytes
      && createHash('sha256').update(Buffer.from(l.previousHash, 'hex')).update(l.bytes, 'utf8').digest('hex') === l.hash
    if (!same) wrong.push(`${w.stream_id} v${w.stream_version}`)
  })
  t.same(wrong, [], 'every field as the database has it; each hash checks')
}

t.test('the whole log: every event once, in order, each field and the hashed bytes as the database has them', async (t) => {
  const want = await stored()
  t.equal(want.length, 3018)
  checkLines(t, await exported({}, 'jsonl'), want)
})

t.test('with a cache of one stream, every previous hash comes from the database instead', async (t) => {
  checkLines(t, await exported({}, 'jsonl', { cachedStreams: 1 }), await stored())
  t.throws(() => exportEventsTo(db, {}, 'jsonl', collector([]), { cachedStreams: 0 }), /cachedStreams must be a whole number of at least 1/)
})

t.test('filters keep each event\'s previous hash, also when its predecessor is filtered out', async (t) => {
  const all = await stored()
  checkLines(t, await exported({ types: ['OtpRejected'] }, 'jsonl'), all.filter((w) => w.type === 'OtpRejected'))
  checkLines(t, await exported({ types: ['OtpRejected', 'TokenRenamed'] }, 'jsonl'), all.filter((w) => w.type === 'OtpRejected' || w.type === 'TokenRenamed'))
  checkLines(t, await exported({ streamId: odd }, 'jsonl'), all.filter((w) => w.stream_id === odd))
  checkLines(t, await exported({ streamId: 'token-3' }, 'jsonl'), all.filter((w) => w.stream_id === 'token-3'))
  const from = new Date('2026-01-01T00:00:01Z')
  const to = new Date('2026-01-01T00:00:02Z')
  const inRange = all.filter((w) => w.recorded_at >= from.toISOString().replace('.000Z', '.000000Z') && w.recorded_at < to.toISOString().replace('.000Z', '.000000Z'))
  t.ok(inRange.length > 900 && inRange.length < 1100, 'about a second of events')
  checkLines(t, await exported({ from, to }, 'jsonl'), inRange)
  t.equal(await exported({ streamId: "token-'; drop table events; --" }, 'jsonl'), '', 'a filter value is a literal, not SQL')
})

t.test('CSV has the same fields, every event once', async (t) => {
  const want = await stored()
  const rows = parse(await exported({}, 'csv'), { columns: true }) as Record<string, string>[]
  t.equal(rows.length, want.length)
  const wrong = rows.filter((r, i) => {
    const w = want[i]!
    return r.position !== w.position || r.tx_id !== w.tx_id || r.stream_id !== w.stream_id || r.stream_version !== String(w.stream_version)
      || r.type !== w.type || r.recorded_at !== w.recorded_at || r.data !== w.data || r.metadata !== w.metadata || r.hash !== w.hash
      || r.previous_hash !== w.previous_hash || r.bytes !== w.bytes
  })
  t.same(wrong.map((r) => `${r.stream_id} v${r.stream_version}`), [])
})

t.test('a destination that closes early stops the export and its COPY; the pool serves the next export', async (t) => {
  let chunks = 0
  const early = new Writable({
    write(_chunk: Buffer, _encoding, callback) {
      chunks++
      callback()
      this.destroy()
    },
  })
  const error = await exportEventsTo(db, {}, 'jsonl', early).catch((e: Error) => e)
  t.ok(error instanceof ExportDestinationClosed, `the export ends with ExportDestinationClosed (${String(error)})`)
  t.equal(chunks, 1, 'nothing written after the close')
  t.equal(await copiesLeft(db), 0, 'no COPY left running')
  checkLines(t, await exported({ streamId: odd }, 'jsonl'), (await stored()).filter((w) => w.stream_id === odd))
})

t.test('several exports at once share the export thread, each whole and in order', async (t) => {
  const all = await stored()
  const [whole, filtered, csvText, one] = await Promise.all([
    exported({}, 'jsonl'), exported({ types: ['OtpRejected'] }, 'jsonl'), exported({}, 'csv'), exported({ streamId: odd }, 'jsonl'),
  ])
  checkLines(t, whole, all)
  checkLines(t, filtered, all.filter((w) => w.type === 'OtpRejected'))
  t.equal((parse(csvText, { columns: true }) as unknown[]).length, all.length, 'the CSV export has every event')
  checkLines(t, one, all.filter((w) => w.stream_id === odd))
})

t.test('an export that cannot reach its database fails with the reason; the next export works', async (t) => {
  const missing = createDatabase(url.replace(/\/[^/?]+(\?|$)/, '/tessera_no_such_database$1'))
  t.teardown(() => missing.destroy())
  const out = collector([])
  await t.rejects(exportEventsTo(missing, {}, 'jsonl', out), /database "tessera_no_such_database" does not exist/)
  t.notOk(out.writableEnded || out.destroyed, 'the destination is left to the caller')
  checkLines(t, await exported({ streamId: odd }, 'jsonl'), (await stored()).filter((w) => w.stream_id === odd))
})

t.test('a slow destination gets every line once, all through the same shared memory', async (t) => {
  // About 20 slabs of lines, written slowly: the worker waits for a free slab longer than it holds a
  // part of one, which goes out on its own; the rest of that slab goes out once, later.
  await sql`
    insert into events (stream_id, stream_version, type, data, metadata)
    select 'token-slow-' || (g % 13), g / 13 + 1, 'OtpVerified', jsonb_build_object('counter', g, 'note', repeat('s', 900)), ${meta}::jsonb
    from generate_series(0, 19999) as g`.execute(db)
  const chunks: Buffer[] = []
  const memory = new Set<ArrayBufferLike>()
  await exportEventsTo(db, {}, 'jsonl', collector(chunks, 60, memory))
  t.ok(chunks.length > 20, `${chunks.length} chunks`)
  checkLines(t, Buffer.concat(chunks).toString('utf8'), await stored())
  t.equal(memory.size, 1, 'one memory for every chunk')
  const [shared] = [...memory]
  t.ok(shared instanceof SharedArrayBuffer && shared.byteLength <= 4 * SLAB_BYTES, 'shared with the export thread, a few slabs long')
})

t.test('lines longer than a slab go out whole, in order, in JSON lines and CSV', async (t) => {
  // Each line holds its note twice (data, and escaped in the hashed bytes): more than a slab. The store
  // refuses an event that large; SQL does not, and the export must still write it. Two in a row: the
  // second waits until the first is written.
  const note = 'long "quoted" \\\\ '.repeat(Math.ceil(SLAB_BYTES / 2 / 16))
  for (const [version, data] of [{ note: 'before' }, { name: 'long', note }, { name: 'longer', note: note + note }, { name: 'after' }].entries()) {
    await sql`
      insert into events (stream_id, stream_version, type, data, metadata)
      values ('token-long', ${version + 1}, 'TokenRenamed', ${JSON.stringify(data)}::jsonb, ${meta}::jsonb)`.execute(db)
  }
  const want = await stored()
  const chunks: Buffer[] = []
  const memory = new Set<ArrayBufferLike>()
  await exportEventsTo(db, {}, 'jsonl', collector(chunks, 20, memory))
  checkLines(t, Buffer.concat(chunks).toString('utf8'), want)
  const own = [...memory].filter((m) => !(m instanceof SharedArrayBuffer))
  t.equal(own.length, 2, 'each long line in a buffer of its own')
  t.ok(own.every((m) => m.byteLength > SLAB_BYTES))
  const rows = parse(await exported({ streamId: 'token-long' }, 'csv'), { columns: true }) as Record<string, string>[]
  t.same(rows.map((r) => JSON.parse(r.data!).name ?? null), [null, 'long', 'longer', 'after'])
  t.equal(JSON.parse(rows[2]!.data!).note, note + note)
})

t.test('a socket as the destination: the export ends when its writable side has finished', async (t) => {
  // A socket is a Duplex whose readable side ends only when the peer ends its own, which this peer does
  // not (half open): the export must not wait for it.
  const received: Buffer[] = []
  let ended!: () => void
  const peerEnded = new Promise<void>((resolve) => (ended = resolve))
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (b: Buffer) => received.push(b))
    socket.on('end', () => ended())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  await exportEventsTo(db, { streamId: odd }, 'jsonl', socket)
  await peerEnded
  checkLines(t, Buffer.concat(received).toString('utf8'), (await stored()).filter((w) => w.stream_id === odd))
  socket.destroy()
})
