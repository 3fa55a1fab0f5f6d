// What every command needs: the database, the event store, the seed vault and the clock.
import type { SeedVault } from '../crypto/vault.js'
import type { PostgresEventStore } from '../event-store/postgres.js'
import type { Db } from '../read-models/database.js'

export interface CommandContext {
  db: Db
  store: PostgresEventStore
  vault: SeedVault
  now: () => Date
}

/** How often a command reloads and decides again after another writer got there first. */
export const MAX_CONFLICT_RETRIES = 3
