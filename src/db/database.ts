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

/** How long a query waits for a connection before failing as "database unavailable". */
export const CONNECT_TIMEOUT_MS = 5000

/** PostgreSQL's SQLSTATEs for a server that is shutting down, starting, or a connection that broke (class 08). */
const DOWN_STATES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006'])
const DOWN_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'])

/**
 * Is this error the database being unreachable (stopped, restarting, the connection lost or not given in
 * time), rather than something a request did? Such requests answer 503 and succeed again once it is back.
 */
export function databaseUnavailable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null
  if (!e || typeof e !== 'object') return false
  if (typeof e.code === 'string' && (DOWN_STATES.has(e.code) || DOWN_ERRNOS.has(e.code))) return true
  const message = typeof e.message === 'string' ? e.message : ''
  return /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/.test(message)
}

// The pool behind each database, for its settings (openConnection).
const pools = new WeakMap<Kysely<Database>, pg.Pool>()

export function createDatabase(connectionString: string, options: DatabaseOptions = {}): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString,
    // Runs the statements marked with executePrepared (db/prepared.ts) as named prepared statements.
    Client: PreparingClient,
    max: options.max ?? 20,
    application_name: options.applicationName ?? 'tessera',
    idleTimeoutMillis: 30_000,
    // While the database is down or restarting, a request waiting for a connection fails within this
    // (503, "Try again in a moment") instead of hanging; a healthy pool hands one over in microseconds.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
  })
  // An idle client that loses its server must not crash the process; the pool replaces it.
  pool.on('error', () => {})
  // Nor one that is checked out (inside a transaction, between two statements) when the server goes away
  // (a restart's "terminating connection due to administrator command"): pg-pool listens on idle clients
  // only. Its next statement fails, the request answers 503, and the pool drops it on release.
  pool.on('connect', (client) => client.on('error', () => {}))
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  pools.set(db, pool)
  return db
}

/**
 * The pg pool behind a database opened with createDatabase (undefined for any other executor): for fixed
 * statements on a hot path, sent without a query builder (oidc/adapter.ts).
 */
export function poolOf(db: unknown): pg.Pool | undefined {
  return pools.get(db as Kysely<Database>)
}

/** What a connection to the database needs, as plain data (for a worker thread, which opens its own). */
export interface ConnectionSettings {
  connectionString: string
  application_name: string
}

export function connectionSettings(db: Kysely<Database>): ConnectionSettings {
  const pool = pools.get(db)
  if (!pool) throw new Error('connectionSettings: the database was not opened with createDatabase')
  const { connectionString, application_name } = pool.options as pg.PoolConfig
  return { connectionString: connectionString!, application_name: application_name! }
}

/**
 * A new connection outside any pool, for one long statement (the audit export's COPY, which lasts as long
 * as its reader takes): it never holds one of a pool's. The caller ends it.
 */
export async function openConnection(settings: ConnectionSettings): Promise<pg.Client> {
  const client = new pg.Client(settings)
  // A statement's errors reach the statement; a connection lost between statements must not crash the process.
  client.on('error', () => {})
  await client.connect()
  return client
}

/** The pool's connections now: all of them, the idle ones, and requests waiting for one (for metrics). */
export function poolStats(db: Kysely<Database>): { total: number; idle: number; waiting: number } | null {
  const pool = pools.get(db)
  return pool ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount } : null
}
