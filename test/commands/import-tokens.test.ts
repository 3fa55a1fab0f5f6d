// The import command with several batches in flight: every token whole or absent, each once, the report in
// line order, the read models equal to a rebuild from the events.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { importTokens } from '../../src/commands/import-tokens.js'
import { registerUser } from '../../src/commands/users.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { parseInventory } from '../../src/import/index.js'
import { streamsProjection } from '../../src/projections/streams.js'
import { tokensProjection } from '../../src/projections/tokens.js'
import { rebuildProjection } from '../../src/projections/rebuild.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { db, store } = await testDatabase(t, { poolSize: 8 })
const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
const ctx = { db, store, vault, now: () => new Date() }
const admin = metadata({ actor: { type: 'admin', id: 'test' } })
const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model'
const SEED = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'
await registerUser(ctx, { upn: 'helga@contoso.com', displayName: 'Helga', password: 'long enough password' }, admin)

function file(lines: string[], throwAfter?: number): AsyncIterable<string> {
  return (async function* () {
    yield `${HEADER}\n`
    for (let i = 0; i < lines.length; i++) {
      if (i === throwAfter) throw new Error('the upload broke off')
      yield `${lines[i]}\n`
    }
  })()
}

async function counts(prefix: string) {
  const r = await sql<{ events: string; streams: string; tokens: string; secrets: string }>`
    select (select count(distinct stream_id) from events where stream_id like ${`token-${prefix}%`}) as events,
           (select count(*) from streams where stream_id like ${`token-${prefix}%`}) as streams,
           (select count(*) from tokens where serial like ${`${prefix}%`}) as tokens,
           (select count(*) from token_secrets where serial like ${`${prefix}%`}) as secrets`.execute(db)
  return Object.values(r.rows[0]!).map(Number)
}

t.test('batches written at once: every good row once, bad rows in line order, read models as a rebuild makes them', async (t) => {
  const lines = Array.from({ length: 230 }, (_, i) =>
    i % 50 === 7 ? `,A-${i},NOT-BASE32!,30,,` : `${i % 3 === 0 ? 'helga@contoso.com' : ''},A-${i},${SEED},30,Token2,C202`)
  const report = await importTokens(ctx, parseInventory('entra', file(lines)), admin, { format: 'entra', batchSize: 16, concurrency: 3 })
  t.equal(report.imported, 225)
  t.same(report.rejected.map((r) => r.line), [9, 59, 109, 159, 209])
  t.same(await counts('A-'), [225, 225, 225, 225])
  t.same((await verifyChains(db)).breaks, [])

  const live = async () => ({
    tokens: (await sql`select * from tokens order by serial`.execute(db)).rows,
    streams: (await sql`select * from streams order by stream_id`.execute(db)).rows,
  })
  const before = await live()
  await rebuildProjection(db, store, tokensProjection)
  await rebuildProjection(db, store, streamsProjection)
  t.same(await live(), before)
})

t.test('two imports of one file at the same time: each token imported by one of them, whole', async (t) => {
  const lines = Array.from({ length: 120 }, (_, i) => `,B-${i},${SEED},30,,`)
  const options = { format: 'entra' as const, batchSize: 10, concurrency: 2 }
  const [a, b] = await Promise.all([
    importTokens(ctx, parseInventory('entra', file(lines)), admin, options),
    importTokens(ctx, parseInventory('entra', file(lines)), admin, options),
  ])
  t.equal(a.imported + b.imported, 120)
  t.equal(a.rejected.length + b.rejected.length, 120)
  t.ok([...a.rejected, ...b.rejected].every((r) => r.reason === 'serial already in the inventory'))
  t.same(await counts('B-'), [120, 120, 120, 120])
})

t.test('a file that breaks off: the batches in flight finish whole, the error comes out, nothing is half-written', async (t) => {
  const lines = Array.from({ length: 100 }, (_, i) => `,C-${i},${SEED},30,,`)
  const error = await importTokens(ctx, parseInventory('entra', file(lines, 75)), admin, { format: 'entra', batchSize: 10, concurrency: 3 })
    .catch((e) => e)
  t.match(error.message, /broke off/)
  const [events, streams, tokens, secrets] = await counts('C-')
  t.equal(tokens, 70, 'the full batches read before the break')
  t.same([events, streams, secrets], [tokens, tokens, tokens])
})
