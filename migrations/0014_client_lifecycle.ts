// Relying applications can be deleted (ClientDeleted): the row stays, marked, so the read model is what the
// log folds to; the OpenID provider no longer finds it. Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table clients add column deleted boolean not null default false`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table clients drop column deleted`.execute(db)
}
