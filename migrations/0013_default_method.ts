// The user's default sign-in method (Entra's "Default sign-in method"): a token's serial, set by
// DefaultMethodChosen. Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table users add column default_method text`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table users drop column default_method`.execute(db)
}
