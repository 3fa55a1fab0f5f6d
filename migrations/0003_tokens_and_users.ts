// Tokens (inline read model), their encrypted seeds, users and their password hashes.
// Seeds and password hashes live outside the event log, so they can be destroyed; events carry none.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tokens (
      serial text primary key,
      status text not null,
      kind text not null,
      algorithm text not null,
      digits smallint not null,
      period smallint,
      counter bigint,
      manufacturer text,
      model text,
      user_id text,
      name text,
      last_step bigint,
      drift integer not null default 0,
      activation_failures integer not null default 0,
      failures integer not null default 0,
      locked_until timestamptz,
      disabled boolean not null default false,
      lock_count integer not null default 0,
      last_used_at timestamptz,
      seed_fingerprint text,
      activated_at timestamptz,
      imported_at timestamptz not null,
      version integer not null
    )
  `.execute(db)
  await sql`create index tokens_user_idx on tokens (user_id) where user_id is not null`.execute(db)

  await sql`
    create table token_secrets (
      serial text primary key,
      key_id text not null,
      nonce bytea not null,
      ciphertext bytea not null,
      created_at timestamptz not null default now()
    )
  `.execute(db)
  await sql`create index token_secrets_key_idx on token_secrets (key_id)`.execute(db)

  await sql`
    create table users (
      id text primary key,
      upn text not null,
      display_name text not null,
      roles jsonb not null default '[]',
      created_at timestamptz not null,
      version integer not null
    )
  `.execute(db)
  await sql`create unique index users_upn_key on users (lower(upn))`.execute(db)

  await sql`
    create table user_credentials (
      user_id text primary key,
      password_hash text not null,
      updated_at timestamptz not null default now()
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table user_credentials`.execute(db)
  await sql`drop table users`.execute(db)
  await sql`drop table token_secrets`.execute(db)
  await sql`drop table tokens`.execute(db)
}
