// Temporary codes for users who lost their token: only a hash is kept. Frozen: imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table temporary_codes (
      user_id text primary key,
      code_hash bytea not null,
      one_time boolean not null,
      expires_at timestamptz not null,
      used_at timestamptz
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table temporary_codes`.execute(db)
}
