import t from 'tap'
import { sql } from 'kysely'
import { createDatabase } from '../../src/db/database.js'
import { PostgresEventStore } from '../../src/event-store/postgres.js'
import { CatchUpSubscription, processBatch, readCheckpoint } from '../../src/event-store/subscription.js'
import type { RecordedEvent } from '../../src/event-store/types.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { url, db, store } = await testDatabase(t)
await sql`create table seen (position bigint primary key, stream_id text not null)`.execute(db)

async function seen(): Promise<number[]> {
  return (await sql<{ position: string }>`select position from seen order by position`.execute(db)).rows.map((r) => Number(r.position))
}

async function waitFor<T>(check: () => Promise<T | false>, ms = 5000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== false) return value
    if (Date.now() > until) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('a batch and its checkpoint commit together: a failing handler leaves both as they were', async (t) => {
  for (let i = 0; i < 5; i++) await store.append(`s-${i}`, 'no-stream', [{ type: 'Noted', data: { i } }], metadata())
  let calls = 0
  const handle = async (trx: any, events: RecordedEvent[]) => {
    calls++
    for (const e of events) await sql`insert into seen values (${e.position}, ${e.streamId})`.execute(trx)
    if (calls === 1) throw new Error('crash after writing rows')
  }
  await t.rejects(processBatch(db, store, 'crashy', 3, handle), /crash after writing rows/)
  t.same(await seen(), [], 'the rows of the failed batch are gone')
  t.same(await readCheckpoint(db, 'crashy'), { txId: '0', position: 0 }, 'the checkpoint did not move')

  t.equal(await processBatch(db, store, 'crashy', 3, handle), 3, 'the batch is replayed')
  t.equal(await processBatch(db, store, 'crashy', 3, handle), 2)
  t.equal(await processBatch(db, store, 'crashy', 3, handle), 0, 'caught up')
  const all = (await store.readAll({ txId: '0', position: 0 }, 100)).events.map((e) => e.position)
  t.same(await seen(), all, 'each event handled exactly once')
  t.equal((await readCheckpoint(db, 'crashy')).position, all[all.length - 1])
})

t.test('two processes running the same subscription never handle a batch twice', async (t) => {
  await sql`truncate seen`.execute(db)
  for (let i = 0; i < 40; i++) await store.append(`p-${i}`, 'no-stream', [{ type: 'Noted', data: { i } }], metadata())
  const other = createDatabase(url, { max: 4 })
  t.teardown(() => other.destroy())
  const otherStore = new PostgresEventStore(other)
  const handle = async (trx: any, events: RecordedEvent[]) => {
    for (const e of events) await sql`insert into seen values (${e.position}, ${e.streamId})`.execute(trx)
  }
  const a = new CatchUpSubscription(db, store, { name: 'shared', handle, batchSize: 4 })
  const b = new CatchUpSubscription(other, otherStore, { name: 'shared', handle, batchSize: 4 })
  await Promise.all([a.catchUp(), b.catchUp(), a.catchUp(), b.catchUp()])
  const all = (await store.readAll({ txId: '0', position: 0 }, 1000)).events.map((e) => e.position)
  t.same(await seen(), all, 'every event once (a duplicate would have hit the primary key)')
})

t.test('a running subscription wakes on appends in this process', async (t) => {
  const got: RecordedEvent[] = []
  const sub = new CatchUpSubscription(db, store, { name: 'local', pollMs: 60_000, handle: async (_trx, events) => void got.push(...events) })
  await sub.start()
  t.teardown(() => sub.stop())
  await waitFor(async () => got.length > 0 && got.length)
  const before = got.length
  await store.append('wake-local', 'no-stream', [{ type: 'Noted', data: {} }], metadata())
  await waitFor(async () => got.length > before || false, 3000)
  t.equal(got[got.length - 1]!.streamId, 'wake-local', 'delivered without waiting for the 60 s poll')
})

t.test("another process's append wakes it through LISTEN/NOTIFY", async (t) => {
  const got: RecordedEvent[] = []
  const sub = new CatchUpSubscription(db, store, { name: 'remote', pollMs: 60_000, listenUrl: url, handle: async (_trx, events) => void got.push(...events) })
  await sub.start()
  t.teardown(() => sub.stop())
  await waitFor(async () => got.length > 0 && got.length)
  const other = createDatabase(url, { max: 2 })
  const otherStore = new PostgresEventStore(other, { notifyDebounceMs: 1 })
  t.teardown(async () => { otherStore.close(); await other.destroy() })
  await otherStore.append('wake-remote', 'no-stream', [{ type: 'Noted', data: {} }], metadata())
  await waitFor(async () => got.some((e) => e.streamId === 'wake-remote'), 3000)
  t.pass('delivered without waiting for the 60 s poll')
})

t.test('without LISTEN, polling still delivers', async (t) => {
  const got: RecordedEvent[] = []
  const sub = new CatchUpSubscription(db, store, { name: 'poller', pollMs: 50, listenUrl: null, handle: async (_trx, events) => void got.push(...events) })
  await sub.start()
  t.teardown(() => sub.stop())
  const other = createDatabase(url, { max: 2 })
  const otherStore = new PostgresEventStore(other, { notifyDebounceMs: 0 })
  t.teardown(async () => { otherStore.close(); await other.destroy() })
  await otherStore.append('polled', 'no-stream', [{ type: 'Noted', data: {} }], metadata())
  await waitFor(async () => got.some((e) => e.streamId === 'polled'), 3000)
  t.pass('delivered by the poll')
})

t.test('stop during a long backlog returns after the batch in hand; the next start goes on from there', async (t) => {
  for (let i = 0; i < 60; i++) await store.append(`backlog-${i}`, 'no-stream', [{ type: 'Noted', data: { i } }], metadata())
  let handled = 0
  let sub: CatchUpSubscription | null = null
  sub = new CatchUpSubscription(db, store, { name: 'backlog', batchSize: 5, pollMs: 60_000, handle: async (_trx, events) => {
    handled += events.length
    if (handled === 10) void sub!.stop()
    await new Promise((r) => setTimeout(r, 5))
  } })
  await sub.start()
  await sub.stop()
  t.ok(handled < 60, `stopped early (${handled} handled)`)
  const again = new CatchUpSubscription(db, store, { name: 'backlog', batchSize: 50, handle: async (_trx, events) => void (handled += events.length) })
  await again.catchUp()
  const total = (await store.readAll({ txId: '0', position: 0 }, 10_000)).events.length
  t.equal(handled, total, 'every event handled once, across the stop')
})

t.test('catchUp includes every event committed before it was called, even behind an older transaction still running', async (t) => {
  const handled: string[] = []
  const subscription = new CatchUpSubscription(db, store, {
    name: 'behind-a-slow-one',
    handle: async (_trx, events) => void handled.push(...events.map((e) => e.streamId)),
  })
  await subscription.catchUp()
  handled.length = 0
  // An older transaction takes its id (a row lock) and keeps running; a later append commits meanwhile.
  const slow = await db.connection().execute(async (conn) => {
    await sql`begin`.execute(conn)
    await sql`select pg_current_xact_id()`.execute(conn)
    await store.append('later-stream', 'no-stream', [{ type: 'Noted', data: {} }], metadata())
    const caught = subscription.catchUp(5000)
    await new Promise((r) => setTimeout(r, 150))
    t.same(handled, [], 'the later event waits behind the older transaction')
    await sql`commit`.execute(conn)
    return caught
  })
  t.ok(slow >= 1)
  t.same(handled, ['later-stream'], 'and is handled before catchUp returns')
})
