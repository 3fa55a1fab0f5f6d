// `tessera audit verify` finds the first event whose stored bytes were changed.
import t from 'tap'
import { sql } from 'kysely'
import { appendWithProjections } from '../../src/commands/append.js'
import { tessera } from '../helpers/cli.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { url, db, store } = await testDatabase(t)
for (const serial of ['1001', '1002', '1003']) {
  await appendWithProjections({ db, store }, `token-${serial}`, 'no-stream', [
    { type: 'TokenImported', data: { serial, kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, counter: null,
      manufacturer: 'Token2', model: 'C202', seedFingerprint: 'f'.repeat(32), source: 'entra-csv' } },
    { type: 'TokenAssigned', data: { serial, userId: 'alice', by: 'admin' } },
    { type: 'TokenActivated', data: { serial, userId: 'alice', step: 1, drift: 0 } },
  ], metadata())
}

/** Tampering as the database owner would: the immutability trigger off, one statement, trigger on. */
async function tamper(statement: ReturnType<typeof sql>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`alter table events disable trigger events_immutable`.execute(trx)
    await statement.execute(trx)
    await sql`alter table events enable trigger events_immutable`.execute(trx)
  })
}

t.test('an untouched log verifies', async (t) => {
  const run = await tessera(['audit', 'verify'], { DATABASE_URL: url })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /ok: 3 streams, 9 events/)
})

t.test('one changed byte of one event is reported with its stream and version, exit 1', async (t) => {
  // "C202" -> "C203": one byte of version 1's data.
  await tamper(sql`update events set data = jsonb_set(data, '{model}', '"C203"') where stream_id = 'token-1002' and stream_version = 1`)
  const run = await tessera(['audit', 'verify'], { DATABASE_URL: url })
  t.equal(run.code, 1)
  t.match(run.stderr, /stream token-1002 version 1: the stored event does not match its hash/)
  t.notMatch(run.stderr, /token-1001|token-1003/, 'the other streams are intact')
  t.match(run.stderr, /1 of 3 streams broken/)
  const one = await tessera(['audit', 'verify', '--stream', 'token-1001'], { DATABASE_URL: url })
  t.equal(one.code, 0, 'a single intact stream verifies')
})

t.test('a changed actor in metadata, a removed event and a removed last event are each located', async (t) => {
  await tamper(sql`update events set metadata = jsonb_set(metadata, '{actor,id}', '"mallory"') where stream_id = 'token-1001' and stream_version = 3`)
  await tamper(sql`delete from events where stream_id = 'token-1003' and stream_version = 2`)
  const run = await tessera(['audit', 'verify'], { DATABASE_URL: url })
  t.equal(run.code, 1)
  t.match(run.stderr, /stream token-1001 version 3: the stored event does not match its hash/)
  t.match(run.stderr, /stream token-1003 version 3: the event before it is missing/)
  await appendWithProjections({ db, store }, 'user-1004', 'no-stream', [
    { type: 'UserNoted', data: {} }, { type: 'UserNoted', data: {} }], metadata())
  await tamper(sql`delete from events where stream_id = 'user-1004' and stream_version = 2`)
  const tail = await tessera(['audit', 'verify', '--stream', 'user-1004'], { DATABASE_URL: url })
  t.equal(tail.code, 1)
  t.match(tail.stderr, /stream user-1004 version 2: the stream's last events are missing/)
})

t.test('bad usage is an error line and exit 2', async (t) => {
  const unknown = await tessera(['audit', 'verify', '--stream', 'token-none'], { DATABASE_URL: url })
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /stream token-none has no events/)
  const wrong = await tessera(['audit', 'frobnicate'], { DATABASE_URL: url })
  t.equal(wrong.code, 2)
  t.match(wrong.stderr, /unknown command/)
})
