// An inventory import now writes with COPY and chains its events' hashes itself (src/event-store/copy-append.ts).
// The trigger's WHEN clause of 0009 stays, as that COPY uses it; 0009's bulk append function is no longer
// called, and is left in place so that 0009 stays whole for a database migrated down to it.
// Two indexes no query uses go, each an entry more to write for every imported token:
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
