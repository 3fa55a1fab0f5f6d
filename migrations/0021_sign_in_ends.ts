// sign_in_ends: when everything that signs in as a user last ended (a password reset, a disabled or deleted
// account), written in the same transaction as the change. With REDIS_URL the provider keeps sessions, grants
// and access tokens in Redis, which a transaction here cannot reach, nor can the CLI: an artifact made before
// this time is refused wherever it is kept (src/oidc/sign-in-ends.ts).
// Frozen in time: this file imports nothing from src/.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table sign_in_ends (
      user_id text primary key,
      ended_at timestamptz not null
    )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table sign_in_ends`.execute(db)
}
