// The foundation's read models: streams (inline), audit_index and event_type_stats (catch-up).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table streams (
      stream_id text primary key,
      category text not null,
      version integer not null,
      last_type text not null,
      created_at timestamptz not null,
      updated_at timestamptz not null
    )
  `.execute(db)
  await sql`create index streams_category_idx on streams (category, stream_id)`.execute(db)

  await sql`
    create table audit_index (
      position bigint primary key,
      tx_id xid8 not null,
      stream_id text not null,
      stream_version integer not null,
      type text not null,
      actor_type text not null,
      actor_id text not null,
      correlation_id text not null,
      -- the user the event is about (a token's owner, the user of a user stream), and the relying application
      user_id text,
      relying_application text,
      recorded_at timestamptz not null
    )
  `.execute(db)
  await sql`create index audit_index_stream_idx on audit_index (stream_id, position)`.execute(db)
  await sql`create index audit_index_user_idx on audit_index (user_id, position) where user_id is not null`.execute(db)
  await sql`create index audit_index_client_idx on audit_index (relying_application, position) where relying_application is not null`.execute(db)
  await sql`create index audit_index_actor_idx on audit_index (actor_id, recorded_at)`.execute(db)
  await sql`create index audit_index_type_idx on audit_index (type, recorded_at)`.execute(db)
  await sql`create index audit_index_time_idx on audit_index (recorded_at)`.execute(db)

  await sql`
    create table event_type_stats (
      type text primary key,
      count bigint not null,
      first_recorded_at timestamptz not null,
      last_recorded_at timestamptz not null
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table event_type_stats`.execute(db)
  await sql`drop table audit_index`.execute(db)
  await sql`drop table streams`.execute(db)
}
