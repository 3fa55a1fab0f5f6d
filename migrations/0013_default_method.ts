// The user's default sign-in method (Entra's "Default sign-in method"): a token's serial, set by
// DefaultMethodChosen; and whether an admin disabled the account (UserDisabled, UserEnabled).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table users add column default_method text, add column disabled boolean not null default false`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table users drop column default_method, drop column disabled`.execute(db)
}
