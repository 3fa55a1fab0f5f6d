// Links between an upstream identity provider's subjects and local users (identity brokering).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table upstream_links (
      issuer text not null,
      subject text not null,
      user_id text not null,
      linked_at timestamptz not null,
      primary key (issuer, subject)
    )
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table upstream_links`.execute(db)
}
