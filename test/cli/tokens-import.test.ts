// `tessera tokens import`, `tessera users add`, `tessera keys rotate` through the real command.
import t from 'tap'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { sql } from 'kysely'
import { activateToken } from '../../src/commands/tokens.js'
import { openVault } from '../../src/crypto/keyring.js'
import { tessera } from '../helpers/cli.js'
import { metadata, testDatabase } from '../helpers/database.js'
import { TEST_DATA_DIR } from '../helpers/embedded-server.js'
import { hotpAt, totpAt } from '../helpers/oathtool.js'

const { url, db, store } = await testDatabase(t)
await fs.mkdir(TEST_DATA_DIR, { recursive: true })
const dataDir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'cli-'))
t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
const env = { DATABASE_URL: url, TESSERA_DATA_DIR: dataDir }
const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model'
// RFC 6238 seeds: "12345678901234567890" and its 32-byte SHA256 sibling, in Base32 and hex.
const SEED20_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'
const SEED20_HEX = '3132333435363738393031323334353637383930'
const SEED32_HEX = '3132333435363738393031323334353637383930313233343536373839303132'

async function file(name: string, lines: string[]): Promise<string> {
  const p = path.join(dataDir, name)
  await fs.writeFile(p, lines.join('\n') + '\n')
  return p
}

async function eventTypes(serial: string): Promise<string[]> {
  return (await sql<{ type: string }>`select type from events where stream_id = ${`token-${serial}`} order by stream_version`.execute(db)).rows.map((r) => r.type)
}

async function count(table: 'events' | 'tokens' | 'token_secrets' | 'remote_service_secrets'): Promise<number> {
  return Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]!.n)
}

t.test('users are added with the password on standard input, never as an argument', async (t) => {
  const added = await tessera(['users', 'add', 'Helga@contoso.onmicrosoft.com', '--name', 'Helga Example', '--password-stdin'], env, 'a good long password\n')
  t.equal(added.code, 0, added.stderr)
  t.match(added.stdout, /added helga@contoso.onmicrosoft.com/)
  const again = await tessera(['users', 'add', 'helga@contoso.onmicrosoft.com', '--password-stdin'], env, 'another password\n')
  t.equal(again.code, 1)
  t.match(again.stderr, /a user helga@contoso.onmicrosoft.com already exists/)
  const noStdin = await tessera(['users', 'add', 'x@example.com'], env)
  t.equal(noStdin.code, 2)
  t.match(noStdin.stderr, /--password-stdin/)
  const hash = await db.selectFrom('user_credentials').select('password_hash').executeTakeFirstOrThrow()
  t.match(hash.password_hash, /^scrypt\$/, 'stored as an scrypt hash')
})

t.test("Entra's example row imports: TokenImported, then TokenAssigned to its user", async (t) => {
  const f = await file('entra.csv', [HEADER, 'Helga@contoso.onmicrosoft.com,1234567,2234567abcdef2234567abcdef,60,Contoso,HardwareKey',
    `,8659623756140,${SEED20_B32},30,Token2,C202`])
  const run = await tessera(['tokens', 'import', f], env)
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /imported 2 tokens, rejected 0 rows/)
  t.same(await eventTypes('1234567'), ['TokenImported', 'TokenAssigned'])
  t.same(await eventTypes('8659623756140'), ['TokenImported'])
  const row = await db.selectFrom('tokens').selectAll().where('serial', '=', '1234567').executeTakeFirstOrThrow()
  t.match(row, { status: 'assigned', period: 60, digits: 6, algorithm: 'SHA1', kind: 'totp', manufacturer: 'Contoso', model: 'HardwareKey' })
  t.notOk(run.stdout.includes(SEED20_B32) || run.stderr.includes(SEED20_B32), 'no seed on the terminal')
})

t.test('every bad row is reported with its line, serial and reason; the good rows still import', async (t) => {
  const before = await count('tokens')
  const f = await file('bad.csv', [
    HEADER,
    `,GOOD-A,${SEED20_B32},30,,`,
    `,BAD-B32,JBSWY3DPEHPK3PX1,30,,`,
    `,TOO-SHORT,JBSWY3DPEHPK3P,30,,`,
    `,BAD-INTERVAL,${SEED20_B32},45,,`,
    `not-a-upn,BAD-UPN,${SEED20_B32},30,,`,
    `nobody@contoso.com,NO-USER,${SEED20_B32},30,,`,
    `,GOOD-A,${SEED20_B32},30,,`,
    `,8659623756140,${SEED20_B32},30,,`,
    `helga@contoso.onmicrosoft.com,GOOD-B,${SEED20_B32},60,,`,
  ])
  const run = await tessera(['tokens', 'import', f], env)
  t.equal(run.code, 1, 'some rows rejected')
  t.match(run.stdout, /imported 2 tokens, rejected 7 rows/)
  const lines = run.stderr.trim().split('\n')
  t.match(lines[0], /^line 3, serial BAD-B32: .*Base32/i)
  t.match(lines[1], /^line 4, serial TOO-SHORT: .*(short|at least)/i)
  t.match(lines[2], /^line 5, serial BAD-INTERVAL: unknown time interval/)
  t.match(lines[3], /^line 6, serial BAD-UPN: /)
  t.match(lines[4], /^line 7, serial NO-USER: unknown user nobody@contoso.com/)
  t.match(lines[5], /^line 8, serial GOOD-A: duplicate serial in the file \(first on line 2\)/)
  t.match(lines[6], /^line 9, serial 8659623756140: serial already in the inventory/)
  t.notOk(run.stderr.includes('JBSWY3DPEHPK3PX1'), 'a bad secret is not echoed')
  t.equal(await count('tokens'), before + 2)
  t.same(await eventTypes('GOOD-B'), ['TokenImported', 'TokenAssigned'])
})

t.test('re-importing a file rejects every row as a duplicate and changes nothing', async (t) => {
  const before = [await count('events'), await count('tokens'), await count('token_secrets')]
  const run = await tessera(['tokens', 'import', path.join(dataDir, 'entra.csv')], env)
  t.equal(run.code, 1)
  t.match(run.stdout, /imported 0 tokens, rejected 2 rows/)
  t.match(run.stderr, /line 2, serial 1234567: serial already in the inventory/)
  t.same([await count('events'), await count('tokens'), await count('token_secrets')], before)
})

t.test('a file that is not an Entra CSV is refused whole: exit 2, nothing written', async (t) => {
  const before = await count('events')
  const wrong = await tessera(['tokens', 'import', await file('wrong.csv', ['serial,secret', '1,2'])], env)
  t.equal(wrong.code, 2)
  t.match(wrong.stderr, /cannot be imported: .*upn,serial number,secret key,time interval,manufacturer,model/)
  t.match(wrong.stderr, /--format oath/)
  const missing = await tessera(['tokens', 'import', path.join(dataDir, 'nope.csv')], env)
  t.equal(missing.code, 2)
  t.match(missing.stderr, /no file/)
  t.equal(await count('events'), before)
})

t.test('privacyIDEA OATH CSV: 6- and 8-digit SHA256 TOTP and HOTP tokens import and verify oathtool codes', async (t) => {
  const f = await file('oath.csv', [
    `OATH-T6, ${SEED32_HEX}, totp, 6, 30:sha256`,
    `OATH-T8, ${SEED32_HEX}, totp, 8, 30:sha256`,
    `OATH-H1, ${SEED20_HEX}, hotp, 6`,
  ])
  const run = await tessera(['tokens', 'import', f, '--format', 'oath'], env)
  t.equal(run.code, 0, run.stderr)
  const rows = await db.selectFrom('tokens').select(['serial', 'kind', 'algorithm', 'digits', 'counter']).where('serial', 'like', 'OATH-%').orderBy('serial').execute()
  t.same(rows.map((r) => [r.serial, r.kind, r.algorithm, r.digits]), [['OATH-H1', 'hotp', 'SHA1', 6], ['OATH-T6', 'totp', 'SHA256', 6], ['OATH-T8', 'totp', 'SHA256', 8]])

  // The seeds decrypt to what was imported: each token activates with a code oathtool computes.
  const vault = openVault({ masterKey: null, previousMasterKeys: [], fingerprintKey: null, dataDir })
  const now = 1_800_000_000
  const ctx = { db, store, vault, now: () => new Date(now * 1000) }
  const { registerUser } = await import('../../src/commands/users.js')
  const { userId } = await registerUser(ctx, { upn: 'oath@example.com', displayName: 'Oath', password: 'long enough password' }, metadata())
  await activateToken(ctx, { serial: 'OATH-T6', userId, name: 'six', code: totpAt(SEED32_HEX, now, { algorithm: 'SHA256' }) }, metadata())
  await activateToken(ctx, { serial: 'OATH-T8', userId, name: 'eight', code: totpAt(SEED32_HEX, now, { algorithm: 'SHA256', digits: 8 }) }, metadata())
  await activateToken(ctx, { serial: 'OATH-H1', userId, name: 'counter', code: hotpAt(SEED20_HEX, 3) }, metadata())
  const active = await db.selectFrom('tokens').select(['serial', 'status', 'counter']).where('user_id', '=', userId).orderBy('serial').execute()
  t.same(active.map((r) => [r.serial, r.status]), [['OATH-H1', 'active'], ['OATH-T6', 'active'], ['OATH-T8', 'active']])
  t.equal(Number(active[0]!.counter), 4, 'the HOTP counter moves past the accepted value')
})

t.test('keys rotate re-encrypts every seed and remote service secret under a new key, and they still open', async (t) => {
  // A remote service's shared secret, sealed by the same vault.
  const secret = 'radius shared secret'
  const added = await tessera(['remote-services', 'add-radius', 'old-otp', '--name', 'Old OTP', '--server', '127.0.0.1:1812', '--secret-stdin'], env, `${secret}\n`)
  t.equal(added.code, 0, added.stderr)
  const before = await db.selectFrom('token_secrets').select('key_id').distinct().execute()
  t.equal(before.length, 1)
  const run = await tessera(['keys', 'rotate'], env)
  t.equal(run.code, 0, run.stderr)
  const total = await count('token_secrets') + await count('remote_service_secrets')
  t.match(run.stdout, new RegExp(`re-encrypted ${total} sealed secrets \\(seeds, remote services' secrets\\) under master key k[0-9a-f]{12}`))
  const after = await db.selectFrom('token_secrets').select('key_id').distinct().execute()
  t.equal(after.length, 1)
  t.not(after[0]!.key_id, before[0]!.key_id, 'all under the new key')
  const remote = await db.selectFrom('remote_service_secrets').select('key_id').execute()
  t.same(remote.map((r) => r.key_id), [after[0]!.key_id], 'the remote service\'s secrets too')
  // Changed without its secret, the service keeps the one it has: it opens under the new key.
  const changed = await tessera(['remote-services', 'add-radius', 'old-otp', '--name', 'Old OTP server', '--server', '127.0.0.1:1812'], env)
  t.equal(changed.code, 0, changed.stderr)
  const keyring = JSON.parse(await fs.readFile(path.join(dataDir, 'keyring.json'), 'utf8'))
  t.equal(keyring.keys.length, 2, 'the old key is kept for readers that have not reloaded')
  t.equal((await fs.stat(path.join(dataDir, 'keyring.json'))).mode & 0o777, 0o600)

  const vault = openVault({ masterKey: null, previousMasterKeys: [], fingerprintKey: null, dataDir })
  const now = 1_800_000_000
  const ctx = { db, store, vault, now: () => new Date(now * 1000) }
  const { userId } = await (await import('../../src/commands/users.js')).registerUser(ctx,
    { upn: 'rotated@example.com', displayName: 'Rotated', password: 'long enough password' }, metadata())
  const state = await activateToken(ctx, { serial: '8659623756140', userId, name: 'after rotation', code: totpAt(SEED20_HEX, now) }, metadata())
  t.equal(state.status, 'active', 'a seed encrypted under the new key verifies')
})

t.test('the import writes exactly the rows the inline projections would: a rebuild gives the same', async (t) => {
  const { assertRebuildEqual } = await import('../helpers/rebuild.js')
  await assertRebuildEqual(t, db, store, ['tokens', 'streams'])
})
