import t from 'tap'
import { sql } from 'kysely'
import { arrayLiteral, byteaArrayLiteral } from '../../src/db/array-literal.js'
import { testDatabase } from '../helpers/database.js'

const { db } = await testDatabase(t, { migrate: false })

t.test('text, numbers and NULLs come back from PostgreSQL as they were sent', async (t) => {
  const texts = ['plain', '', 'NULL', 'with "quotes"', 'back\\slash', '\\"', '{braces},commas', '  spaces  ', 'line\nbreak\ttab', 'é ✓ 😀', null]
  const back = await sql<{ a: (string | null)[] }>`select ${arrayLiteral(texts)}::text[] as a`.execute(db)
  t.same(back.rows[0]!.a, texts)
  const numbers = [0, -1, 32767, 2 ** 53 - 1, null]
  const ints = await sql<{ a: (string | null)[] }>`select ${arrayLiteral(numbers)}::bigint[]::text[] as a`.execute(db)
  t.same(ints.rows[0]!.a, numbers.map((n) => (n === null ? null : String(n))))
  const empty = await sql<{ n: number }>`select cardinality(${arrayLiteral([])}::text[]) as n`.execute(db)
  t.equal(empty.rows[0]!.n, 0)
})

t.test('bytes come back as they were sent', async (t) => {
  const values = [Buffer.from([0, 1, 0x5c, 0x22, 0xff]), Buffer.alloc(0), null]
  const back = await sql<{ a: (Buffer | null)[] }>`select ${byteaArrayLiteral(values)}::bytea[] as a`.execute(db)
  t.same(back.rows[0]!.a.map((b) => (b === null ? null : b.toString('hex'))), values.map((b) => (b === null ? null : b.toString('hex'))))
})
