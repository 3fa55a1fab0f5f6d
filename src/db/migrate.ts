// Schema migrations with Kysely's Migrator. PostgreSQL runs DDL in transactions, so a run that fails
// leaves the schema as it was.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, type Kysely, Migrator, type MigrationResultSet } from 'kysely'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url))

export function createMigrator(db: Kysely<any>, folder = MIGRATIONS_DIR): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: folder }),
  })
}

export class MigrationFailed extends Error {
  override name = 'MigrationFailed'
  constructor(
    readonly migration: string | undefined,
    override readonly cause: unknown,
  ) {
    super(`migration ${migration ?? '(unknown)'} failed, nothing was changed: ${(cause as Error)?.message ?? cause}`)
  }
}

export async function migrateToLatest(db: Kysely<any>, folder = MIGRATIONS_DIR): Promise<MigrationResultSet> {
  const result = await createMigrator(db, folder).migrateToLatest()
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')
    throw new MigrationFailed(failed?.migrationName, result.error)
  }
  return result
}

/** Names of migrations that exist in the folder but have not run. */
export async function pendingMigrations(db: Kysely<any>, folder = MIGRATIONS_DIR): Promise<string[]> {
  const all = await createMigrator(db, folder).getMigrations()
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name)
}
