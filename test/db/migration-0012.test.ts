// Migration 0012 records, for each user who activated a token before it, one SignInMethodAdded on their
// stream (by 'backfill'), so that "ever had a method" is in the log; the users and streams rows say so as
// the projections would, and every hash chain still verifies.
import t from 'tap'
import { sql } from 'kysely'
import { createMigrator, migrateToLatest } from '../../src/db/migrate.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { metadata, testDatabase } from '../helpers/database.js'

t.test('users who had a method before the migration are marked, in the log and the read model', async (t) => {
  const { db, store } = await testDatabase(t, { migrate: false })
  const before = await createMigrator(db).migrateTo('0011_audit_index_owners')
  t.notOk(before.error, 'migrated to 0011')
  const meta = metadata()
  for (const [id, upn] of [['u-had', 'had@example.com'], ['u-never', 'never@example.com']]) {
    await store.append(`user-${id}`, 'no-stream', [{ type: 'UserRegistered', data: { userId: id, upn, displayName: upn } }], meta)
    await sql`insert into users (id, upn, display_name, roles, groups, created_at, version) values (${id}, ${upn}, ${upn}, '[]', '[]', now(), 1)`.execute(db)
    await sql`insert into streams (stream_id, category, version, last_type, created_at, updated_at) values (${`user-${id}`}, 'user', 1, 'UserRegistered', now(), now())`.execute(db)
  }
  const imported = { serial: 'S1', kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, counter: null, manufacturer: null, model: null, seedFingerprint: 'f', source: 'entra-csv' }
  await store.append('token-S1', 'no-stream', [
    { type: 'TokenImported', data: imported },
    { type: 'TokenAssigned', data: { serial: 'S1', userId: 'u-had', by: 'self' } },
    { type: 'TokenActivated', data: { serial: 'S1', userId: 'u-had', step: 1, drift: 0 } },
    { type: 'TokenUnassigned', data: { serial: 'S1', userId: 'u-had', by: 'self' } },
  ], meta)

  await migrateToLatest(db)
  const users = (await sql<{ id: string; had_method: boolean; version: number }>`select id, had_method, version from users order by id`.execute(db)).rows
  t.same(users, [{ id: 'u-had', had_method: true, version: 2 }, { id: 'u-never', had_method: false, version: 1 }])
  const added = (await sql<{ stream_version: number; type: string; data: any; metadata: any }>`select stream_version, type, data, metadata from events where stream_id = 'user-u-had' order by stream_version`.execute(db)).rows
  t.match(added[1], { stream_version: 2, type: 'SignInMethodAdded', data: { userId: 'u-had', serial: 'S1', by: 'backfill' }, metadata: { actor: { type: 'system', id: 'migration-0012' } } })
  const streams = (await sql<{ version: number; last_type: string }>`select version, last_type from streams where stream_id = 'user-u-had'`.execute(db)).rows[0]
  t.same(streams, { version: 2, last_type: 'SignInMethodAdded' })
  t.same((await verifyChains(db)).breaks, [], 'every hash chain verifies')
})
