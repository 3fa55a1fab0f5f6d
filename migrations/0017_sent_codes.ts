// Codes sent by text message or e-mail (methods/sent-code):
// - tokens.destination: where a phone or e-mail method's codes go, masked; the full one is sealed in token_secrets.
// - challenges: a method's newest code, as a keyed hash, with its number (what the replay guard compares) and expiry.
// - deliveries: the durable queue between issuing a code and a provider taking it. A job is written in the
//   same transaction as its challenge; workers on any process take jobs with FOR UPDATE SKIP LOCKED and a
//   lease; the message (holding the code) is sealed and erased once a provider took it or it expired.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tokens add column destination text`.execute(db)
  await sql`
    create table challenges (
      serial text primary key,
      number bigint not null,
      code_hash bytea not null,
      expires_at timestamptz not null,
      issued_at timestamptz not null
    )`.execute(db)
  await sql`
    create table deliveries (
      id bigserial primary key,
      serial text not null,
      challenge bigint,
      -- 'sign-in' or 'activation' (a destination not yet proven), null for a notice.
      purpose text,
      user_id text not null,
      channel text not null,
      destination_hash bytea not null,
      source_ip text,
      key_id text,
      nonce bytea,
      message bytea,
      status text not null default 'pending',
      attempts integer not null default 0,
      provider_index integer not null default 0,
      next_attempt_at timestamptz not null,
      lease_until timestamptz,
      expires_at timestamptz not null,
      created_at timestamptz not null,
      provider text,
      message_id text,
      error text,
      -- A delivery report that came before the worker recorded the provider's answer.
      reported boolean not null default false
    )`.execute(db)
  await sql`create table send_budget (minute timestamptz primary key, sent integer not null)`.execute(db)
  await sql`create index deliveries_due on deliveries (next_attempt_at) where status in ('pending', 'sending')`.execute(db)
  await sql`create index deliveries_user on deliveries (user_id, created_at)`.execute(db)
  await sql`create index deliveries_destination on deliveries (destination_hash, created_at)`.execute(db)
  await sql`create index deliveries_source on deliveries (source_ip, created_at)`.execute(db)
  await sql`create index deliveries_receipt on deliveries (provider, message_id) where message_id is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table send_budget`.execute(db)
  await sql`drop table deliveries`.execute(db)
  await sql`drop table challenges`.execute(db)
  await sql`alter table tokens drop column destination`.execute(db)
}
