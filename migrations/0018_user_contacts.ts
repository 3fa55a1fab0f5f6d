// Where a user can be reached (Defender's `mobile` and `email` attributes): the address notices go to and
// the number or address an admin programs a phone or e-mail method from. Kept beside the account, not in
// events (which say only that it changed, masked); deleted with the account. Notices wait in `deliveries`
// like codes (challenge null, the whole message sealed).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table user_contacts (
      user_id text primary key,
      email text,
      mobile text,
      updated_at timestamptz not null
    )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table user_contacts`.execute(db)
}
