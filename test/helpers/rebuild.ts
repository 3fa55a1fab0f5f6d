// Asserts that rebuilding read models from the log gives exactly the live rows.
import type { Test } from 'tap'
import { sql } from 'kysely'
import type { PostgresEventStore } from '../../src/event-store/postgres.js'
import { projectionNamed } from '../../src/projections/index.js'
import { rebuildProjection } from '../../src/projections/rebuild.js'
import type { Db } from '../../src/read-models/database.js'

export async function assertRebuildEqual(t: Test, db: Db, store: PostgresEventStore, names: string[]): Promise<void> {
  for (const name of names) {
    const projection = projectionNamed(name)!
    const dump = async () => {
      const out: unknown[] = []
      // Sorted on the whole row: a table's first column need not be unique (policy_assignments).
      for (const table of projection.tables) {
        const rows = (await sql`select * from ${sql.table(table)}`.execute(db)).rows
        out.push(rows.map((r) => JSON.stringify(r)).sort())
      }
      return out
    }
    const live = await dump()
    await rebuildProjection(db, store, projection)
    t.same(await dump(), live, `${name}: rebuilt from the log, equal to the live rows`)
  }
}
