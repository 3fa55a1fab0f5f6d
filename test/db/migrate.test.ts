import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { sql } from 'kysely'
import { MIGRATIONS_DIR, MigrationFailed, migrateToLatest, pendingMigrations } from '../../src/db/migrate.js'
import { testDatabase } from '../helpers/database.js'
import { TEST_DATA_DIR } from '../helpers/embedded-server.js'

async function tables(db: any): Promise<string[]> {
  return (await sql<{ t: string }>`select tablename as t from pg_tables where schemaname = 'public' and tablename not like 'kysely%' order by 1`.execute(db)).rows.map((r) => r.t)
}

t.test('a migration that fails leaves the schema as it was', async (t) => {
  const { db } = await testDatabase(t, { migrate: false })
  // Inside the project, so the copied migrations resolve kysely.
  await fs.mkdir(TEST_DATA_DIR, { recursive: true })
  const folder = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'migrations-'))
  t.teardown(() => fs.rm(folder, { recursive: true, force: true }))
  for (const f of await fs.readdir(MIGRATIONS_DIR)) await fs.copyFile(path.join(MIGRATIONS_DIR, f), path.join(folder, f))
  await fs.writeFile(path.join(folder, '9999_broken.ts'), `
    import { sql } from 'kysely'
    export async function up(db) {
      await sql\`create table half_done (id int)\`.execute(db)
      await sql\`select * from no_such_table\`.execute(db)
    }`)
  const error = await migrateToLatest(db, folder).catch((e) => e)
  t.type(error, MigrationFailed)
  t.match(error.message, /9999_broken failed, nothing was changed/)
  t.same(await tables(db), [], 'not even the earlier migrations of the same run were kept')
  const recorded = await sql`select name from kysely_migration`.execute(db)
  t.same(recorded.rows, [], 'and none is recorded as applied')
  await migrateToLatest(db)
  t.same(await pendingMigrations(db), [], 'the real migrations then apply')
  t.ok((await tables(db)).includes('events'))
})
