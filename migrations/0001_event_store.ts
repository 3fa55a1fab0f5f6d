// The event store: one append-only table, its hash chain and its guards.
// Frozen in time: this file imports nothing from src/ and is never edited once released.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table events (
      position bigint generated always as identity primary key,
      stream_id text not null,
      stream_version integer not null,
      type text not null,
      data jsonb not null,
      metadata jsonb not null,
      recorded_at timestamptz not null default now(),
      tx_id xid8 not null default pg_current_xact_id(),
      hash bytea not null,
      constraint events_stream_version_key unique (stream_id, stream_version),
      constraint events_stream_version_positive check (stream_version > 0)
    )
  `.execute(db)
  // The global read order: (transaction, position). See readAll in src/event-store.
  await sql`create index events_tx_position_idx on events (tx_id, position)`.execute(db)

  // The bytes an event's hash covers: the JSON array [stream id, version, type, data, metadata, time],
  // written out by concatenation. jsonb's text form is canonical (keys sorted, spacing fixed), so the
  // same event always gives the same bytes, here and in an offline checker; concatenating the stored
  // texts costs a fraction of building a new jsonb array and printing it.
  await sql`
    create function tessera_event_bytes(stream_id text, stream_version integer, type text,
                                        data jsonb, metadata jsonb, recorded_at timestamptz)
    returns bytea language sql immutable parallel safe as $$
      select convert_to('[' || to_json(stream_id)::text || ', ' || stream_version::text || ', ' || to_json(type)::text
        || ', ' || data::text || ', ' || metadata::text || ', "'
        || to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"]', 'UTF8')
    $$
  `.execute(db)

  // Per row, before insert: check the expected version (or assign it when the caller said 'any'),
  // then chain this event's hash to the previous one of its stream.
  // A concurrent writer that passes this check still meets the unique (stream_id, stream_version) key.
  await sql`
    create function tessera_events_before_insert() returns trigger language plpgsql as $$
    declare
      previous_version integer;
      previous_hash bytea;
    begin
      -- A new stream's first event has no predecessor to find: the unique key refuses a second version 1.
      if new.stream_version is distinct from 1 then
        select e.stream_version, e.hash into previous_version, previous_hash
          from events e where e.stream_id = new.stream_id
          order by e.stream_version desc limit 1;
      end if;
      if new.stream_version is null then
        new.stream_version := coalesce(previous_version, 0) + 1;
      elsif new.stream_version > 1 and previous_version is null then
        raise exception 'stream % does not exist', new.stream_id
          using errcode = 'TS002', detail = new.stream_version - 1, hint = new.stream_id;
      elsif new.stream_version > 1 and previous_version <> new.stream_version - 1 then
        raise exception 'stream % is at version %, not %', new.stream_id, previous_version, new.stream_version - 1
          using errcode = 'TS001', detail = previous_version, hint = new.stream_id;
      end if;
      new.hash := sha256(coalesce(previous_hash, ''::bytea) ||
        tessera_event_bytes(new.stream_id, new.stream_version, new.type, new.data, new.metadata, new.recorded_at));
      return new;
    end
    $$
  `.execute(db)
  await sql`
    create trigger events_before_insert before insert on events
    for each row execute function tessera_events_before_insert()
  `.execute(db)

  // Events are immutable: the database itself refuses to change or remove one.
  await sql`
    create function tessera_events_immutable() returns trigger language plpgsql as $$
    begin
      raise exception 'events are immutable: % refused', tg_op using errcode = 'TS003';
    end
    $$
  `.execute(db)
  await sql`
    create trigger events_immutable before update or delete on events
    for each row execute function tessera_events_immutable()
  `.execute(db)
  await sql`
    create trigger events_no_truncate before truncate on events
    for each statement execute function tessera_events_immutable()
  `.execute(db)

  // Catch-up subscriptions: where each has read to, in the global order (transaction, position).
  await sql`
    create table subscription_checkpoints (
      name text primary key,
      tx_id xid8 not null,
      position bigint not null,
      updated_at timestamptz not null default now()
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table subscription_checkpoints`.execute(db)
  await sql`drop table events`.execute(db)
  await sql`drop function tessera_events_immutable()`.execute(db)
  await sql`drop function tessera_events_before_insert()`.execute(db)
  await sql`drop function tessera_event_bytes(text, integer, text, jsonb, jsonb, timestamptz)`.execute(db)
}
