import t from 'tap'
import { sql } from 'kysely'
import { copyBytea, copyIn, copyText } from '../../src/db/copy.js'
import { withConnection } from '../../src/db/database.js'
import { testDatabase } from '../helpers/database.js'

const { db } = await testDatabase(t, { migrate: false })
await sql`create table copied (n integer, t text, b bytea)`.execute(db)

t.test('text, numbers, bytes and NULLs come back from PostgreSQL as they were sent', async (t) => {
  const texts = ['plain', '', '\\N', 'NULL', 'back\\slash', 'line\nbreak\ttab\rreturn', 'é ✓ 😀', '\\.', null]
  const bytes = [Buffer.from([0, 1, 0x5c, 0x22, 0xff]), Buffer.alloc(0), null]
  const rows = texts.map((text, i) => `${copyText(i)}\t${copyText(text)}\t${copyBytea(bytes[i % bytes.length]!)}\n`).join('')
  const stored = await withConnection(db, (client) => copyIn(client, 'copy copied (n, t, b) from stdin', rows))
  t.equal(stored, texts.length, 'the server says how many rows it stored')
  const back = await sql<{ t: string | null; b: Buffer | null }>`select t, b from copied order by n`.execute(db)
  t.same(back.rows.map((r) => r.t), texts)
  t.same(back.rows.map((r) => r.b?.toString('hex') ?? null), texts.map((_, i) => bytes[i % bytes.length]?.toString('hex') ?? null))
})

t.test('a row the server refuses fails the COPY, stores nothing, and the pool goes on', async (t) => {
  const before = (await sql<{ n: string }>`select count(*) as n from copied`.execute(db)).rows[0]!.n
  const error = await withConnection(db, (client) => copyIn(client, 'copy copied (n, t, b) from stdin', `1\tgood\t\\N\nnot a number\tbad\t\\N\n`))
    .catch((e: unknown) => e)
  t.match((error as Error).message, /invalid input syntax for type integer/)
  t.equal((await sql<{ n: string }>`select count(*) as n from copied`.execute(db)).rows[0]!.n, before)
})
