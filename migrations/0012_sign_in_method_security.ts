// Sign-in methods change only with a second factor (and a user who lost every method needs an admin):
// - tokens: wrong activation codes per (inventory token, user), and the user a removed token is held for;
// - users: whether the account ever had an active method, and its run of wrong passwords;
// - gateway_sessions: server-side records of the gateway's sessions, so a sign-out ends a copied cookie
//   on every process and a session has an absolute lifetime;
// - each user who activated a token before this migration gets one SignInMethodAdded (by 'backfill') on
//   their stream, so "ever had a method" is in the log, and the users rows say so as the projection would.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table tokens add column claim_failures jsonb not null default '{}', add column held_for text`.execute(db)
  await sql`alter table users add column had_method boolean not null default false,
    add column sign_in_failures integer not null default 0, add column last_sign_in_failure_at timestamptz`.execute(db)
  await sql`
    create table gateway_sessions (
      id text primary key,
      user_id text not null,
      started_at timestamptz not null,
      expires_at timestamptz not null,
      ended_at timestamptz
    )
  `.execute(db)
  await sql`create index gateway_sessions_user_idx on gateway_sessions (user_id) where ended_at is null`.execute(db)
  await sql`
    with firsts as (
      select distinct on (e.data->>'userId') e.data->>'userId' as user_id, e.data->>'serial' as serial
      from events e where e.type = 'TokenActivated' order by e.data->>'userId', e.position
    ), appended as (
      insert into events (stream_id, type, data, metadata)
      select 'user-' || f.user_id, 'SignInMethodAdded',
        jsonb_build_object('userId', f.user_id, 'serial', f.serial, 'by', 'backfill'),
        jsonb_build_object('correlationId', 'migration-0012', 'causationId', null, 'actor', jsonb_build_object('type', 'system', 'id', 'migration-0012'),
          'requestId', 'migration-0012', 'sourceIp', null, 'userAgent', null, 'relyingApplication', null)
      from firsts f join users u on u.id = f.user_id
      returning stream_id, stream_version, recorded_at
    ), marked as (
      update users u set had_method = true, version = a.stream_version
      from appended a where a.stream_id = 'user-' || u.id
    )
    update streams s set version = a.stream_version, last_type = 'SignInMethodAdded', updated_at = a.recorded_at
    from appended a where s.stream_id = a.stream_id
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table gateway_sessions`.execute(db)
  await sql`alter table users drop column had_method, drop column sign_in_failures, drop column last_sign_in_failure_at`.execute(db)
  await sql`alter table tokens drop column claim_failures, drop column held_for`.execute(db)
}
