// Opens the Kysely database over a pg pool.
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import type { Database } from '../read-models/database.js'
import { PreparingClient } from './prepared.js'

export interface DatabaseOptions {
  /** Pool size; a verification needs one connection for one round trip. */
  max?: number
  applicationName?: string
}

export function createDatabase(connectionString: string, options: DatabaseOptions = {}): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString,
    // Runs the statements marked with executePrepared (db/prepared.ts) as named prepared statements.
    Client: PreparingClient,
    max: options.max ?? 20,
    application_name: options.applicationName ?? 'tessera',
    idleTimeoutMillis: 30_000,
  })
  // An idle client that loses its server must not crash the process; the pool replaces it.
  pool.on('error', () => {})
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}
