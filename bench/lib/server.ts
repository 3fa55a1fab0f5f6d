// Where the bench runs: DATABASE_URL's server, or the embedded PostgreSQL in .tessera-bench. On it, a
// database of the run's own, created fresh and dropped at the end.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { startEmbedded } from '../../src/db/embedded-postgres.js'

export interface BenchServer {
  /** Admin URL (any database on the server). */
  adminUrl: string
  embedded: boolean
  stop(): Promise<void>
}

export async function benchServer(rootDir: string, log: (m: string) => void): Promise<BenchServer> {
  if (process.env.DATABASE_URL) {
    return { adminUrl: process.env.DATABASE_URL, embedded: false, stop: async () => {} }
  }
  const dataDir = path.join(rootDir, '.tessera-bench')
  const server = await startEmbedded(dataDir, { log })
  // The data directory is not in the repository's .gitignore: keep git from seeing it.
  await fs.writeFile(path.join(dataDir, '.gitignore'), '*\n').catch(() => {})
  return {
    adminUrl: server.url,
    embedded: true,
    stop: async () => {
      if (server.startedHere) await server.stop()
    },
  }
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

async function admin<T>(adminUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'tessera-bench-admin' })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

export async function createBenchDatabase(adminUrl: string, name: string): Promise<string> {
  await admin(adminUrl, (c) => c.query(`create database ${pg.escapeIdentifier(name)}`))
  return withDatabase(adminUrl, name)
}

export async function dropBenchDatabase(adminUrl: string, name: string): Promise<void> {
  await admin(adminUrl, (c) => c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`))
}

export async function serverInfo(adminUrl: string): Promise<Record<string, string>> {
  return admin(adminUrl, async (c) => {
    const r = await c.query<{ name: string; setting: string }>(`
      select name, current_setting(name) as setting from pg_settings
      where name in ('server_version', 'max_connections', 'shared_buffers', 'synchronous_commit', 'fsync',
                     'wal_sync_method', 'commit_delay', 'work_mem')`)
    return Object.fromEntries(r.rows.map((row) => [row.name, row.setting]))
  })
}
