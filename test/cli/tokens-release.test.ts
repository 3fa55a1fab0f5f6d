// `tessera tokens release SERIAL`: a token its user removed is claimable again; anything else is refused
// with a reason and exit 1, and changes nothing.
import t from 'tap'
import { sql } from 'kysely'
import { appendWithProjections } from '../../src/commands/append.js'
import { tessera } from '../helpers/cli.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { url, db, store } = await testDatabase(t)
for (const serial of ['2001', '2002']) {
  await appendWithProjections({ db, store }, `token-${serial}`, 'no-stream', [
    { type: 'TokenImported', data: { serial, kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, counter: null,
      manufacturer: 'Token2', model: 'C202', seedFingerprint: 'f'.repeat(32), source: 'entra-csv' } },
  ], metadata())
}
await appendWithProjections({ db, store }, 'token-2001', 1, [
  { type: 'TokenAssigned', data: { serial: '2001', userId: 'alice', by: 'self' } },
  { type: 'TokenActivated', data: { serial: '2001', userId: 'alice', step: 1, drift: 0 } },
  { type: 'TokenUnassigned', data: { serial: '2001', userId: 'alice', by: 'self' } },
], metadata())

const heldFor = async (serial: string) => (await sql<{ held_for: string | null }>`select held_for from tokens where serial = ${serial}`.execute(db)).rows[0]!.held_for

t.test('a held token is released', async (t) => {
  t.equal(await heldFor('2001'), 'alice', 'held for the user who removed it')
  const run = await tessera(['tokens', 'release', '2001'], { DATABASE_URL: url })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /token 2001 released: it can be claimed from the inventory again/)
  t.equal(await heldFor('2001'), null)
})

t.test('a token that is not held, or no serial, is refused and changes nothing', async (t) => {
  const before = (await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n
  const run = await tessera(['tokens', 'release', '2002'], { DATABASE_URL: url })
  t.equal(run.code, 1)
  t.match(run.stderr, /token 2002 is not waiting to be released/)
  const none = await tessera(['tokens', 'release'], { DATABASE_URL: url })
  t.not(none.code, 0)
  t.match(none.stderr, /needs a serial number/)
  t.equal((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n, before)
})
