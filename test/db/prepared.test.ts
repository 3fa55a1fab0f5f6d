// Named prepared statements for the hot paths: what executePrepared marks is prepared once per connection
// and gives the same rows as before, whatever the size of the arrays it is given; nothing else is prepared.
import t from 'tap'
import { sql } from 'kysely'
import { executePrepared } from '../../src/db/prepared.js'
import { loadToken } from '../../src/read-models/tokens.js'
import { testDatabase } from '../helpers/database.js'

// One connection, so the session that prepared a statement is the one asked about it.
const { db } = await testDatabase(t, { poolSize: 1 })

const prepared = async () =>
  (await sql<{ statement: string }>`select statement from pg_prepared_statements order by prepare_time`.execute(db)).rows.map((r) => r.statement)

await sql`create table items (id text primary key, n integer not null)`.execute(db)
await sql`insert into items select 'i' || g, g from generate_series(1, 10) g`.execute(db)
const byIds = (ids: string[]) => sql<{ id: string; n: number }>`select id, n from items where id = any(${ids}::text[]) order by n`

t.test('a statement run through executePrepared is prepared once per connection and answers every array size', async (t) => {
  t.same((await executePrepared(db, byIds(['i1']))).rows, [{ id: 'i1', n: 1 }])
  t.same((await executePrepared(db, byIds(['i3', 'i2', 'nope']))).rows, [{ id: 'i2', n: 2 }, { id: 'i3', n: 3 }])
  t.same((await executePrepared(db, byIds([]))).rows, [])
  const statements = await prepared()
  t.equal(statements.filter((s) => s.includes('from items where id = any')).length, 1, 'one prepared statement for every array size')
})

t.test('a statement run the usual way is not prepared', async (t) => {
  await sql`select n from items where id = ${'i4'}`.execute(db)
  t.notOk((await prepared()).some((s) => s.includes('select n from items where id = $1')))
})

t.test('inside a transaction too, with the rows the transaction sees', async (t) => {
  await db.transaction().execute(async (trx) => {
    await sql`update items set n = 100 where id = 'i5'`.execute(trx)
    t.same((await executePrepared(trx, byIds(['i5']))).rows, [{ id: 'i5', n: 100 }])
  })
})

t.test("a token's batched load is a prepared statement, and a column added later does not break it", async (t) => {
  t.equal((await loadToken(db, 'unknown-serial')).state.status, 'absent')
  t.ok((await prepared()).some((s) => s.includes('from tokens t left join token_secrets')))
  await sql`alter table tokens add column later text`.execute(db)
  t.equal((await loadToken(db, 'unknown-serial')).state.status, 'absent')
  await sql`alter table tokens drop column later`.execute(db)
})
