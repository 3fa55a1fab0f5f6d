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
 * first, up to MAX_CONFLICT_RETRIES times; then the conflict goes to the caller.
 */
export async function retryOnConflict<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt()
    } catch (error) {
      if (error instanceof WrongExpectedVersion && n < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}
