// Security policies (inline read model of policy-<id> streams), who they are assigned to, and users'
// groups. Frozen in time: this file imports nothing from src/.
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
  // The same assignments, one row each, so the effective policy is found with index lookups.
  await sql`
    create table policy_assignments (
      target_kind text not null,
      target_id text not null,
      policy_id text not null,
      priority integer not null,
      primary key (target_kind, target_id, policy_id)
    )
  `.execute(db)
  await sql`create index policy_assignments_policy_idx on policy_assignments (policy_id)`.execute(db)
  await sql`alter table users add column groups jsonb not null default '[]'`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table users drop column groups`.execute(db)
  await sql`drop table policy_assignments`.execute(db)
  await sql`drop table policies`.execute(db)
}
