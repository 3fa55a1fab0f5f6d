// Users can be deleted and their passwords reset by an admin.
// - users.deleted: a deleted account's row stays, marked, so the read model is what the log folds to and the
//   audit still names it; its principal name is free again (the unique index covers live accounts only).
// - user_credentials.must_change / expires_at: a temporary password set by an admin works until it expires
//   and only to choose a new one.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table users add column deleted boolean not null default false`.execute(db)
  await sql`drop index users_upn_key`.execute(db)
  await sql`create unique index users_upn_key on users (lower(upn)) where not deleted`.execute(db)
  await sql`alter table user_credentials add column must_change boolean not null default false`.execute(db)
  await sql`alter table user_credentials add column expires_at timestamptz`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table user_credentials drop column expires_at`.execute(db)
  await sql`alter table user_credentials drop column must_change`.execute(db)
  await sql`delete from users where deleted`.execute(db)
  await sql`drop index users_upn_key`.execute(db)
  await sql`create unique index users_upn_key on users (lower(upn))`.execute(db)
  await sql`alter table users drop column deleted`.execute(db)
}
