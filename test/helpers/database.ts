// Each test file works in a database of its own, created for it and dropped after it, so files run
// in parallel and never see each other's rows.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { sql } from 'kysely'
import pg from 'pg'
import type { Test } from 'tap'
import { createDatabase } from '../../src/db/database.js'
import { readInfo, urlOf } from '../../src/db/embedded-postgres.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { PostgresEventStore } from '../../src/event-store/postgres.js'
import type { EventMetadata } from '../../src/event-store/types.js'
import type { Db } from '../../src/read-models/database.js'
import { TEST_DATA_DIR } from './embedded-server.js'

export async function serverUrl(): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL
  const info = await readInfo(TEST_DATA_DIR)
  if (!info) throw new Error('no DATABASE_URL and no embedded PostgreSQL: run the tests with `npm test`')
  return urlOf(info)
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

export interface TestDatabase {
  url: string
  name: string
  db: Db
  store: PostgresEventStore
}

/** A fresh database for this test file; migrated unless `migrate: false`. Dropped at teardown. */
export async function testDatabase(t: Test, options: { migrate?: boolean; poolSize?: number } = {}): Promise<TestDatabase> {
  const admin = await serverUrl()
  const file = path.basename(process.argv[1] ?? 'test').replace(/\.test\.ts$/, '').replace(/[^a-z0-9]/gi, '_').toLowerCase()
  const name = `t_${file.slice(0, 40)}_${randomBytes(4).toString('hex')}`
  const client = new pg.Client({ connectionString: admin })
  await client.connect()
  await client.query(`create database ${pg.escapeIdentifier(name)}`)
  await client.end()
  const url = withDatabase(admin, name)
  const db = createDatabase(url, { max: options.poolSize ?? 10 })
  if (options.migrate !== false) await migrateToLatest(db)
  const store = new PostgresEventStore(db)
  t.teardown(async () => {
    store.close()
    await db.destroy()
    const c = new pg.Client({ connectionString: admin })
    await c.connect()
    await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)
    await c.end()
  })
  return { url, name, db, store }
}

export function metadata(overrides: Partial<EventMetadata> = {}): EventMetadata {
  return {
    correlationId: 'corr-1',
    causationId: null,
    actor: { type: 'system', id: 'test' },
    requestId: null,
    sourceIp: null,
    userAgent: null,
    relyingApplication: null,
    ...overrides,
  }
}

/**
 * How many COPY statements still run on the database, after waiting up to two seconds for them to end
 * (0 as soon as none runs): an export's COPY must end with the export, also when its reader leaves.
 */
export async function copiesLeft(db: Db): Promise<number> {
  const running = async () => Number((await sql<{ n: string }>`
    select count(*) as n from pg_stat_activity
    where datname = current_database() and state = 'active' and query like 'copy (%'`.execute(db)).rows[0]!.n)
  let n = await running()
  for (let i = 0; i < 100 && n > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    n = await running()
  }
  return n
}
