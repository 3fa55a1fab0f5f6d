import t from 'tap'
import { sql } from 'kysely'
import {
  EventTooLarge, InvalidEvent, InvalidMetadata, InvalidStreamId, StreamNotFound, WrongExpectedVersion,
} from '../../src/event-store/errors.js'
import { MAX_EVENT_BYTES } from '../../src/event-store/validate.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t)

async function count(): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n)
}

t.test('an append writes all its events with consecutive versions and its metadata', async (t) => {
  const meta = metadata({ correlationId: 'c-append', actor: { type: 'admin', id: 'alice' }, sourceIp: '127.0.0.1', userAgent: 'tap' })
  const result = await store.append('token-100', 'no-stream', [
    { type: 'TokenImported', data: { serial: '100' } },
    { type: 'TokenAssigned', data: { serial: '100', user: 'bob' } },
  ], meta)
  t.equal(result.nextVersion, 2)
  const events = await store.readStream('token-100')
  t.same(events.map((e) => [e.streamVersion, e.type]), [[1, 'TokenImported'], [2, 'TokenAssigned']])
  t.same(events[1]!.data, { serial: '100', user: 'bob' })
  t.same(events[0]!.metadata, meta)
  t.ok(events[1]!.position > events[0]!.position, 'positions grow')
  t.equal(events[0]!.hash!.length, 32, 'each event carries a sha256 chain hash')
  t.not(events[0]!.hash!.toString('hex'), events[1]!.hash!.toString('hex'))
})

t.test('a stream reads forward from a version, and backward from the end', async (t) => {
  await store.append('user-7', 'no-stream', [1, 2, 3, 4].map((n) => ({ type: 'UserNoted', data: { n } })), metadata())
  t.same((await store.readStream('user-7', { from: 3 })).map((e) => e.data.n), [3, 4])
  t.same((await store.readStream('user-7', { direction: 'backward' })).map((e) => e.data.n), [4, 3, 2, 1])
  t.same((await store.readStream('user-7', { direction: 'backward', from: 2, limit: 1 })).map((e) => e.data.n), [2])
})

t.test('the expected version is checked; a wrong one is a typed error and writes nothing', async (t) => {
  await store.append('token-200', 'no-stream', [{ type: 'TokenImported', data: {} }], metadata())
  const before = await count()
  const error = await store.append('token-200', 0, [{ type: 'TokenAssigned', data: {} }], metadata()).catch((e) => e)
  t.type(error, WrongExpectedVersion)
  t.equal((error as WrongExpectedVersion).actual, 1)
  await t.rejects(store.append('token-200', 'no-stream', [{ type: 'TokenImported', data: {} }], metadata()), WrongExpectedVersion)
  await t.rejects(store.append('token-200', 5, [{ type: 'TokenAssigned', data: {} }], metadata()), WrongExpectedVersion)
  t.equal(await count(), before, 'nothing written')
  const ok = await store.append('token-200', 1, [{ type: 'TokenAssigned', data: {} }], metadata())
  t.equal(ok.nextVersion, 2)
  const any = await store.append('token-200', 'any', [{ type: 'TokenRenamed', data: {} }], metadata())
  t.equal(any.nextVersion, 3, "'any' appends at the end")
})

t.test('an unknown stream is a typed error for reads and for appends that expect it to exist', async (t) => {
  await t.rejects(store.readStream('token-nope'), StreamNotFound)
  const before = await count()
  await t.rejects(store.append('token-nope', 3, [{ type: 'TokenAssigned', data: {} }], metadata()), StreamNotFound)
  t.equal(await count(), before)
})

t.test('bad input is refused before anything is written', async (t) => {
  const before = await count()
  const big = { blob: 'x'.repeat(MAX_EVENT_BYTES) }
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: big }], metadata()), EventTooLarge)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: {} }, { type: 'TokenAssigned', data: big }], metadata()),
    EventTooLarge, 'one oversized event refuses the whole append')
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: {} }], { ...metadata(), actor: { type: 'robot', id: 'x' } } as any),
    InvalidMetadata)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: {} }], { ...metadata(), correlationId: '' }), InvalidMetadata)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: {} }], { ...metadata(), password: 'x' } as any), InvalidMetadata)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: {} }], null as any), InvalidMetadata)
  await t.rejects(store.append('token 300', 'no-stream', [{ type: 'TokenImported', data: {} }], metadata()), InvalidStreamId)
  await t.rejects(store.append('', 'no-stream', [{ type: 'TokenImported', data: {} }], metadata()), InvalidStreamId)
  await t.rejects(store.append('token-300', 'no-stream', [], metadata()), InvalidEvent)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'token imported', data: {} }], metadata()), InvalidEvent)
  await t.rejects(store.append('token-300', 'no-stream', [{ type: 'TokenImported', data: [1] as any }], metadata()), InvalidEvent)
  await t.rejects(store.append('token-300', -1, [{ type: 'TokenImported', data: {} }], metadata()), InvalidEvent)
  t.equal(await count(), before, 'nothing written')
  await t.rejects(store.readStream('token-300'), StreamNotFound, 'the stream was never created')
})

t.test('two writers racing with the same expected version: exactly one wins', async (t) => {
  await store.append('token-race', 'no-stream', [{ type: 'TokenImported', data: {} }], metadata())
  const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
    store.append('token-race', 1, [{ type: 'OtpVerified', data: { writer: i } }], metadata())))
  const won = results.filter((r) => r.status === 'fulfilled')
  t.equal(won.length, 1, 'one append succeeds')
  for (const r of results) if (r.status === 'rejected') t.type(r.reason, WrongExpectedVersion)
  t.equal((await store.readStream('token-race')).length, 2)
})

t.test("writers racing with 'any' all land, each at its own version", async (t) => {
  await Promise.all(Array.from({ length: 6 }, (_, i) =>
    store.append('user-any', 'any', [{ type: 'UserNoted', data: { i } }], metadata())))
  const events = await store.readStream('user-any')
  t.same(events.map((e) => e.streamVersion), [1, 2, 3, 4, 5, 6])
})

t.test('the hash chains each event to the one before it in its stream', async (t) => {
  const events = await store.readStream('user-7')
  for (let i = 1; i < events.length; i++) {
    const expected = (await sql<{ h: Buffer }>`
      select sha256(${events[i - 1]!.hash!} || tessera_event_bytes(stream_id, stream_version, type, data, metadata, recorded_at)) as h
      from events where position = ${events[i]!.position}`.execute(db)).rows[0]!.h
    t.equal(events[i]!.hash!.toString('hex'), expected.toString('hex'), `version ${i + 1}`)
  }
})
