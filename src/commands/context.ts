// What every command needs: the database, the event store, the seed vault and the clock.
import type { SeedVault } from '../crypto/vault.js'
import type { PostgresEventStore } from '../event-store/postgres.js'
import type { Db } from '../read-models/database.js'
import { WrongExpectedVersion } from '../event-store/errors.js'

export interface CommandContext {
  db: Db
  store: PostgresEventStore
  vault: SeedVault
  now: () => Date
}

/** How often a command reloads and decides again after another writer got there first. */
export const MAX_CONFLICT_RETRIES = 3

/**
 * Runs `attempt` (load, decide, append with the expected version) again when another writer got there
 * first, up to MAX_CONFLICT_RETRIES times; then the conflict goes to the caller. PostgreSQL's deadlock and
 * serialization failures are the same thing said by the database: the transaction was rolled back whole.
 */
export async function retryOnConflict<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt()
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const conflict = error instanceof WrongExpectedVersion || code === '40P01' || code === '40001'
      if (conflict && n < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}
