// Software tokens (methods/authenticator-app):
// - software_setups: a key made for an authenticator app and shown to its user, waiting for the app's first
//   code. The key is sealed; the row is deleted when the token is created or the set-up expires (10 minutes),
//   and the key with it. id is a hash of the handle the user's session or desktop app holds.
// - activation_codes: codes an admin (or the user) asked for, redeemed at /activate with the password. Only
//   a hash of the code is kept; the events (ActivationCode*) tell its life.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table activation_codes (
      id text primary key,
      user_id text not null,
      code_hash bytea not null unique,
      -- admin or self: who asked for it
      by text not null,
      -- issued, redeemed, expired, replaced or ended (the account was deleted)
      status text not null,
      expires_at timestamptz not null,
      created_at timestamptz not null,
      redeemed_at timestamptz
    )`.execute(db)
  await sql`create index activation_codes_user on activation_codes (user_id) where status = 'issued'`.execute(db)
  await sql`create index activation_codes_due on activation_codes (expires_at) where status = 'issued'`.execute(db)
  await sql`
    create table software_setups (
      id bytea primary key,
      user_id text not null,
      serial text not null unique,
      key_id text not null,
      nonce bytea not null,
      ciphertext bytea not null,
      -- self or admin: who asked for it (the user on Security info, or an admin's activation code)
      by text not null,
      activation_code text,
      failures integer not null default 0,
      expires_at timestamptz not null,
      created_at timestamptz not null
    )`.execute(db)
  await sql`create index software_setups_user on software_setups (user_id)`.execute(db)
  await sql`create index software_setups_due on software_setups (expires_at)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table software_setups`.execute(db)
  await sql`drop table activation_codes`.execute(db)
}
