import t from 'tap'
import type { Test } from 'tap'
import { sql } from 'kysely'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t)
await store.append('token-1', 'no-stream', [{ type: 'TokenImported', data: { serial: '1' } }], metadata())

async function refused(t: Test, statement: Promise<unknown>, what: string) {
  const error = await statement.then(() => null, (e) => e)
  t.equal(error?.code, 'TS003', `${what} is refused by the database`)
  t.match(error?.message, /events are immutable/)
}

t.test('the database refuses UPDATE, DELETE and TRUNCATE on events', async (t) => {
  await refused(t, sql`update events set data = '{}'`.execute(db), 'UPDATE')
  await refused(t, sql`update events set type = 'TokenRevoked' where stream_id = 'token-1'`.execute(db), 'UPDATE of one row')
  await refused(t, sql`delete from events`.execute(db), 'DELETE')
  await refused(t, sql`truncate events`.execute(db), 'TRUNCATE')
  const events = await store.readStream('token-1')
  t.same(events.map((e) => [e.type, e.data]), [['TokenImported', { serial: '1' }]], 'the event is unchanged')
})

t.test('a hash or version cannot be forged on insert: the trigger computes them', async (t) => {
  await sql`insert into events (stream_id, stream_version, type, data, metadata, hash)
            values ('token-1', 2, 'TokenAssigned', '{}', ${JSON.stringify(metadata())}::jsonb, '\\x00')`.execute(db)
  const [, second] = await store.readStream('token-1')
  t.not(second!.hash!.toString('hex'), '00', 'the given hash was replaced by the chained one')
  const error = await sql`insert into events (stream_id, stream_version, type, data, metadata, hash)
            values ('token-1', 7, 'TokenAssigned', '{}', '{}', '\\x00')`.execute(db).catch((e) => e)
  t.equal(error.code, 'TS001', 'a version gap is refused')
})
