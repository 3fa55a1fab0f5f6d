// The ordering guarantee: a reader of all events never skips an event whose transaction commits
// after a later position was read.
import t from 'tap'
import { sql } from 'kysely'
import pg from 'pg'
import { compareGlobal, START, type GlobalPosition, type RecordedEvent } from '../../src/event-store/types.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { url, db, store } = await testDatabase(t, { poolSize: 20 })

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  return c
}

async function appendIn(c: pg.Client, stream: string, n: number): Promise<number> {
  const r = await c.query(
    `insert into events (stream_id, stream_version, type, data, metadata) values ($1, null, 'OrderProbe', $2, $3) returning position`,
    [stream, JSON.stringify({ n }), JSON.stringify(metadata())])
  return Number(r.rows[0].position)
}

t.test('an event committed late with a lower position is still delivered; a position-only reader loses it', async (t) => {
  const early = await client() // takes its transaction id first, writes its event last
  const late = await client()
  t.teardown(() => Promise.all([early.end(), late.end()]))

  await early.query('begin')
  await early.query('select pg_current_xact_id()')
  await late.query('begin')
  const lowPosition = await appendIn(late, 'order-a', 1)
  const highPosition = await appendIn(early, 'order-b', 2)
  t.ok(lowPosition < highPosition)
  await early.query('commit') // the higher position becomes visible first

  let at: GlobalPosition = START
  const delivered: RecordedEvent[] = []
  const first = await store.readAll(at, 100)
  delivered.push(...first.events)
  at = first.next
  t.same(delivered.map((e) => e.position), [highPosition], 'the committed event is delivered at once')

  // A reader that checkpoints positions alone has now read past the open transaction's event.
  const naiveCheckpoint = highPosition

  await late.query('commit')
  const second = await store.readAll(at, 100)
  delivered.push(...second.events)
  t.same(delivered.map((e) => e.position), [highPosition, lowPosition], 'the late event is delivered after it')

  const naive = await sql<{ position: string }>`select position from events where position > ${naiveCheckpoint} order by position`.execute(db)
  t.notOk(naive.rows.some((r) => Number(r.position) === lowPosition), 'reading by position alone would have skipped it')
})

t.test('concurrent writers committing out of order: every event delivered exactly once, in the global order', async (t) => {
  const writers = 12
  const perWriter = 25
  const clients = await Promise.all(Array.from({ length: writers }, () => client()))
  t.teardown(() => Promise.all(clients.map((c) => c.end())))

  const committed: number[] = []
  let writing = true
  const write = async (c: pg.Client, w: number) => {
    for (let i = 0; i < perWriter; i++) {
      await c.query('begin')
      // Half the transactions take their id before waiting, so ids, positions and commits interleave.
      if (Math.random() < 0.5) await c.query('select pg_current_xact_id()')
      await new Promise((r) => setTimeout(r, Math.random() * 8))
      const positions = [await appendIn(c, `order-w${w}`, i)]
      if (Math.random() < 0.3) positions.push(await appendIn(c, `order-y${w}`, i))
      await new Promise((r) => setTimeout(r, Math.random() * 12))
      if (Math.random() < 0.1) {
        await c.query('rollback') // never delivered
      } else {
        await c.query('commit')
        committed.push(...positions)
      }
    }
  }

  const delivered: RecordedEvent[] = []
  let at: GlobalPosition = (await store.readAll(START, 10_000)).next // past the first test's events
  // Reads until every committed event has arrived. Delivery may wait for a transaction anywhere on the
  // server (another test's) to end; it never skips. A missing event shows as a timeout and a failed count.
  const reader = (async () => {
    const until = () => Date.now() + 20_000
    let deadline = until()
    for (;;) {
      const page = await store.readAll(at, 7)
      delivered.push(...page.events)
      at = page.next
      if (page.events.length > 0) deadline = until()
      if (page.events.length === 0) {
        if (!writing && delivered.length >= committed.length) return
        if (Date.now() > deadline) return
        await new Promise((r) => setTimeout(r, 1))
      }
    }
  })()
  await Promise.all(clients.map((c, w) => write(c, w)))
  writing = false
  await reader

  const positions = delivered.map((e) => e.position)
  t.equal(new Set(positions).size, positions.length, 'no event delivered twice')
  t.same([...positions].sort((a, b) => a - b), [...committed].sort((a, b) => a - b), 'every committed event delivered, no rolled-back one')
  const sorted = [...delivered].sort(compareGlobal)
  t.same(positions, sorted.map((e) => e.position), 'delivered in (transaction, position) order')
  const streams = new Map<string, number>()
  const outOfOrder: string[] = []
  for (const e of delivered) {
    if ((streams.get(e.streamId) ?? 0) >= e.streamVersion) outOfOrder.push(`${e.streamId}@${e.streamVersion}`)
    streams.set(e.streamId, e.streamVersion)
  }
  t.same(outOfOrder, [], 'each stream in version order')
  const inversions = positions.filter((p, i) => i > 0 && p < positions[i - 1]!).length
  t.ok(inversions > 0, `commits did arrive out of position order (${inversions} times), and none was skipped`)
})
