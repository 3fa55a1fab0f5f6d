// Security policies (inline read model of policy-<id> streams) and users' groups.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table policies (
      id text primary key,
      name text not null,
      priority integer not null,
      settings jsonb not null,
      -- [{ "kind": "user" | "group", "id": ... }]
      targets jsonb not null default '[]',
      exists boolean not null,
      version integer not null
    )
  `.execute(db)
  await sql`create index policies_targets_idx on policies using gin (targets jsonb_path_ops)`.execute(db)
  await sql`alter table users add column groups jsonb not null default '[]'`.execute(db)
  // The policy that applies to a user: their own, else their groups', else the default (lowest priority
  // number first, then id). Null when none applies (no default policy written yet: built-in defaults).
  await sql`
    create function tessera_effective_policy_id(p_user_id text) returns text language sql stable as $$
      select p.id from policies p
      cross join lateral (select case
        when p_user_id is not null and p.targets @> jsonb_build_array(jsonb_build_object('kind', 'user', 'id', p_user_id)) then 0
        when p_user_id is not null and p.targets @> any (
          select jsonb_build_array(jsonb_build_object('kind', 'group', 'id', g))
          from users u cross join jsonb_array_elements_text(u.groups) g where u.id = p_user_id) then 1
        when p.id = 'default' then 2 end as rank) r
      where p.exists and r.rank is not null
      order by r.rank, p.priority, p.id
      limit 1
    $$
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function tessera_effective_policy_id(text)`.execute(db)
  await sql`alter table users drop column groups`.execute(db)
  await sql`drop table policies`.execute(db)
}
