// The audit index now gives each event of a token that names no user (renamed, locked, disabled,
// revoked ...) to the token's owner at the time, so that a user's timeline holds everything done to
// their tokens. The index is emptied here, with its checkpoint, and the catch-up projection fills it
// again from the log by the new rule (`tessera projections rebuild audit_index` does it at once).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`delete from audit_index`.execute(db)
  await sql`delete from subscription_checkpoints where name = 'projection:audit_index'`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  // The same: the index is filled again by whichever rule the code running then has.
  await up(db)
}
