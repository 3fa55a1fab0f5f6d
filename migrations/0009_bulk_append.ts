// Bulk appends (an inventory import): the events of many streams, their versions given, in one call that
// chains the hashes set-based instead of once per row in the BEFORE INSERT trigger of 0001.
// The bytes and the chain are exactly the trigger's: sha256(previous hash || tessera_event_bytes(...)), the
// parts every event of the call shares (metadata, time, and so the end of the bytes) computed once.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // - Events go in level by level: every stream's version 1, then every version 2 chained to the version 1
  //   just written (or already stored), and so on; positions follow the given order within a level.
  // - A version 1 can only be new (the unique key refuses a second one); a later version needs its
  //   predecessor, found through the unique index, or the call fails with the trigger's TS002.
  // - The function's SET makes the row trigger stand aside while it runs, and only then: an ordinary
  //   INSERT still has its hash and version computed by the trigger, whatever it sends.
  await sql`
    create function tessera_append_events(stream_ids text[], versions integer[], types text[], datas jsonb[], call_metadata jsonb)
    returns void language plpgsql set tessera.hashed_by_append = 'on' as $$
    declare
      tail text := ', ' || call_metadata::text || ', "' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"]';
      levels integer;
      wanted bigint;
      written bigint;
      orphan text;
    begin
      if cardinality(stream_ids) is distinct from cardinality(versions) or cardinality(stream_ids) is distinct from cardinality(types)
         or cardinality(stream_ids) is distinct from cardinality(datas) then
        raise exception 'tessera_append_events: the arrays differ in length' using errcode = '22023';
      end if;
      select max(v) into levels from unnest(versions) v;
      for level in 1..coalesce(levels, 0) loop
        if level = 1 then
          insert into events (stream_id, stream_version, type, data, metadata, hash)
          select u.s, 1, u.t, u.d, call_metadata,
                 sha256(convert_to('[' || to_json(u.s)::text || ', 1, ' || to_json(u.t)::text || ', ' || u.d::text || tail, 'UTF8'))
          from unnest(stream_ids, versions, types, datas) with ordinality as u(s, v, t, d, n)
          where u.v = 1
          order by u.n;
        else
          select count(*) into wanted from unnest(versions) v where v = level;
          insert into events (stream_id, stream_version, type, data, metadata, hash)
          select u.s, u.v, u.t, u.d, call_metadata,
                 sha256(p.hash || convert_to('[' || to_json(u.s)::text || ', ' || u.v::text || ', ' || to_json(u.t)::text
                   || ', ' || u.d::text || tail, 'UTF8'))
          from unnest(stream_ids, versions, types, datas) with ordinality as u(s, v, t, d, n)
          join events p on p.stream_id = u.s and p.stream_version = u.v - 1
          where u.v = level
          order by u.n;
          get diagnostics written = row_count;
          if written < wanted then
            select u.s into orphan from unnest(stream_ids, versions) as u(s, v)
            where u.v = level and not exists (select 1 from events p where p.stream_id = u.s and p.stream_version = level - 1)
            limit 1;
            raise exception 'stream % does not exist', orphan using errcode = 'TS002', detail = level - 1, hint = orphan;
          end if;
        end if;
      end loop;
    end
    $$
  `.execute(db)
  await sql`drop trigger events_before_insert on events`.execute(db)
  await sql`
    create trigger events_before_insert before insert on events
    for each row when (current_setting('tessera.hashed_by_append', true) is distinct from 'on')
    execute function tessera_events_before_insert()
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger events_before_insert on events`.execute(db)
  await sql`
    create trigger events_before_insert before insert on events
    for each row execute function tessera_events_before_insert()
  `.execute(db)
  await sql`drop function tessera_append_events(text[], integer[], text[], jsonb[], jsonb)`.execute(db)
}
