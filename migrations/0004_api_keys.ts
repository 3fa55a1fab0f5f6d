// Bearer credentials for machines (the admin JSON API). Only a hash of each key's secret is stored.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table api_keys (
      id text primary key,
      name text not null,
      role text not null,
      secret_hash bytea not null,
      created_at timestamptz not null,
      revoked_at timestamptz
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table api_keys`.execute(db)
}
