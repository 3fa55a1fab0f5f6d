// What a CLI command runs against: DATABASE_URL, or the embedded default (the running gateway's
// instance when there is one, else one started for the command's duration).
import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { loadConfig, type AppConfig } from '../../fastify.config.js'
import type { CommandContext } from '../commands/context.js'
import { openVault } from '../crypto/keyring.js'
import type { EventMetadata } from '../event-store/types.js'
import { createDatabase } from '../db/database.js'
import { startEmbedded, type EmbeddedPostgres } from '../db/embedded-postgres.js'
import { migrateToLatest, pendingMigrations } from '../db/migrate.js'
import { PostgresEventStore } from '../event-store/postgres.js'
import type { Db } from '../read-models/database.js'

export interface CliContext {
  db: Db
  store: PostgresEventStore
  databaseUrl: string
  config: AppConfig
  /** The command context, with the seed vault opened on first use. */
  commands(): CommandContext
  /** Event metadata for this run: the operator at the terminal is the actor. */
  meta(): EventMetadata
  close(): Promise<void>
}

export class CliError extends Error {
  override name = 'CliError'
  constructor(message: string, readonly exitCode = 2) {
    super(message)
  }
}

export async function openContext(options: { migrate?: boolean } = {}): Promise<CliContext> {
  const config = loadConfig()
  let embedded: EmbeddedPostgres | null = null
  let databaseUrl = config.databaseUrl
  if (!databaseUrl) {
    embedded = await startEmbedded(config.dataDir, { database: 'tessera' })
    databaseUrl = embedded.url
  }
  const db = createDatabase(databaseUrl, { max: 4, applicationName: 'tessera-cli' })
  try {
    // The embedded default is the CLI's own to keep current; an external database is migrated on purpose.
    if (embedded || options.migrate) await migrateToLatest(db)
    else {
      const pending = await pendingMigrations(db)
      if (pending.length > 0) throw new CliError(`the database needs migrations first: run \`tessera migrate\` (${pending.join(', ')})`)
    }
  } catch (error) {
    await db.destroy()
    if (embedded?.startedHere) await embedded.stop()
    throw error
  }
  const store = new PostgresEventStore(db, { notifyDebounceMs: 0 })
  let commands: CommandContext | null = null
  const correlationId = randomUUID()
  return {
    db,
    store,
    databaseUrl,
    config,
    commands() {
      commands ??= { db, store, vault: openVault(config, (m) => process.stderr.write(`tessera: ${m}\n`)), now: () => new Date() }
      return commands
    },
    meta() {
      return { correlationId, causationId: null, actor: { type: 'admin', id: `cli:${os.userInfo().username}` },
        requestId: null, sourceIp: null, userAgent: 'tessera-cli', relyingApplication: null }
    },
    async close() {
      store.close()
      await db.destroy()
      if (embedded?.startedHere) await embedded.stop()
    },
  }
}
