// Two indexes no query uses, each an entry more to write for every imported token:
// - streams (category, stream_id): nothing reads streams by category;
// - token_secrets (key_id): key rotation looks for `key_id <> current`, which a b-tree cannot serve.
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`drop index streams_category_idx`.execute(db)
  await sql`drop index token_secrets_key_idx`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`create index token_secrets_key_idx on token_secrets (key_id)`.execute(db)
  await sql`create index streams_category_idx on streams (category, stream_id)`.execute(db)
}
