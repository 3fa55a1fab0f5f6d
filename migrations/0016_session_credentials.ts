// A gateway session started by a password remembers which password (user_credentials.updated_at when it
// was checked): a reset or a change makes every session of an older password dead at once, including one
// whose password was checked just before the reset and which started just after it.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table gateway_sessions add column password_at timestamptz`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table gateway_sessions drop column password_at`.execute(db)
}
