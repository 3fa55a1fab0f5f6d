import t from 'tap'
import { sql } from 'kysely'
import { arrayLiteral } from '../../src/db/array-literal.js'
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
