// Remote credentials (methods/remote): codes another service checks (a VIP service over HTTPS with mutual
// TLS, RADIUS servers).
// - tokens: a remote credential's service and its id there.
// - remote_services: the inline read model of remote-service-<id> streams (what is not secret).
// - remote_service_secrets: each service's secrets, sealed by the vault (a PKCS#12 file and its password, the
//   RADIUS shared secret); replaced with the service's configuration, never in an event.
// - remote_codes: keyed hashes of codes a remote service accepted, kept for the code's lifetime, so that a
//   code is accepted once even when the service would accept it again.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tokens add column remote_service text, add column remote_credential text`.execute(db)
  // One live holder per credential of a service.
  await sql`create unique index tokens_remote_credential on tokens (remote_service, remote_credential)
    where remote_service is not null and status <> 'revoked'`.execute(db)
  await sql`
    create table remote_services (
      id text primary key,
      name text not null,
      protocol text not null,
      settings jsonb not null,
      code_lifetime_seconds integer not null,
      secret_fingerprint text,
      exists boolean not null,
      version integer not null
    )`.execute(db)
  await sql`
    create table remote_service_secrets (
      id text primary key,
      key_id text not null,
      nonce bytea not null,
      ciphertext bytea not null,
      created_at timestamptz not null default now()
    )`.execute(db)
  await sql`
    create table remote_codes (
      -- the service and the credential's id there
      credential_key text not null,
      code_hash bytea not null,
      expires_at timestamptz not null,
      primary key (credential_key, code_hash)
    )`.execute(db)
  await sql`create index remote_codes_due on remote_codes (expires_at)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table remote_codes`.execute(db)
  await sql`drop table remote_service_secrets`.execute(db)
  await sql`drop table remote_services`.execute(db)
  await sql`drop index tokens_remote_credential`.execute(db)
  await sql`alter table tokens drop column remote_service, drop column remote_credential`.execute(db)
}
