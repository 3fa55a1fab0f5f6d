// OpenID Connect: the provider's storage (codes, sessions, grants ...), relying applications and
// signing keys. Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table oidc_payloads (
      type text not null,
      id text not null,
      payload jsonb not null,
      grant_id text,
      user_code text,
      uid text,
      expires_at timestamptz,
      consumed_at timestamptz,
      primary key (type, id)
    )
  `.execute(db)
  await sql`create index oidc_payloads_grant_idx on oidc_payloads (grant_id) where grant_id is not null`.execute(db)
  await sql`create index oidc_payloads_uid_idx on oidc_payloads (uid) where uid is not null`.execute(db)
  await sql`create index oidc_payloads_user_code_idx on oidc_payloads (user_code) where user_code is not null`.execute(db)
  await sql`create index oidc_payloads_expires_idx on oidc_payloads (expires_at)`.execute(db)

  await sql`
    create table clients (
      client_id text primary key,
      name text not null,
      redirect_uris jsonb not null,
      public boolean not null,
      created_at timestamptz not null,
      version integer not null
    )
  `.execute(db)
  await sql`
    create table client_secrets (
      client_id text primary key,
      secret_hash text not null
    )
  `.execute(db)

  await sql`
    create table signing_keys (
      kid text primary key,
      alg text not null,
      public_jwk jsonb not null,
      key_id text not null,
      nonce bytea not null,
      ciphertext bytea not null,
      created_at timestamptz not null default now(),
      retired_at timestamptz
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table signing_keys`.execute(db)
  await sql`drop table client_secrets`.execute(db)
  await sql`drop table clients`.execute(db)
  await sql`drop table oidc_payloads`.execute(db)
}
