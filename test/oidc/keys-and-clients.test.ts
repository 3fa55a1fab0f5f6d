// Signing keys rotate without dropping the old one from the JWKS; relying applications registered from
// the CLI get their secret once and only its hash is stored.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { loadSigningKeys, rotateSigningKey } from '../../src/oidc/signing-keys.js'
import { tessera } from '../helpers/cli.js'
import { testDatabase } from '../helpers/database.js'

const { url, db } = await testDatabase(t)
const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))

t.test('the first start creates one ES256 key; a rotation signs with a new one and keeps the old published', async (t) => {
  const first = await loadSigningKeys(db, vault)
  t.equal(first.length, 1)
  t.match(first[0], { kty: 'EC', crv: 'P-256', alg: 'ES256' })
  t.ok(first[0]!.d, 'the private part, for signing')
  const { kid, retired } = await rotateSigningKey(db, vault)
  t.same(retired, [first[0]!.kid])
  const after = await loadSigningKeys(db, vault)
  t.same(after.map((k) => k.kid), [kid, first[0]!.kid], 'the new key first (it signs), the old one still there (it verifies)')
  await sql`update signing_keys set retired_at = now() - interval '25 hours' where kid = ${first[0]!.kid}`.execute(db)
  t.same((await loadSigningKeys(db, vault)).map((k) => k.kid), [kid], 'gone once its tokens have expired')
  const stored = await sql<{ ciphertext: Buffer }>`select ciphertext from signing_keys`.execute(db)
  t.notOk(stored.rows.some((r) => r.ciphertext.toString().includes(String(after[0]!.d))), 'the private key is stored sealed')
})

t.test('tessera clients add prints the secret once and stores only its hash; bad input is refused', async (t) => {
  const env = { DATABASE_URL: url }
  const added = await tessera(['clients', 'add', 'payroll', '--redirect-uri', 'https://payroll.example.com/cb', '--name', 'Payroll'], env)
  t.equal(added.code, 0, added.stderr)
  const secret = added.stdout.trim()
  t.match(secret, /^[A-Za-z0-9_-]{43}$/)
  t.match(added.stderr, /shown once/)
  const row = await sql<{ secret_hash: string }>`select secret_hash from client_secrets where client_id = 'payroll'`.execute(db)
  t.match(row.rows[0]!.secret_hash, /^sha256\$[0-9a-f]{64}$/)
  t.notOk(row.rows[0]!.secret_hash.includes(secret))
  const spa = await tessera(['clients', 'add', 'board', '--redirect-uri', 'http://localhost:5173/cb', '--public'], env)
  t.match(spa.stdout, /public client \(PKCE, no secret\)/)
  const again = await tessera(['clients', 'add', 'payroll', '--redirect-uri', 'https://payroll.example.com/cb'], env)
  t.equal(again.code, 1)
  t.match(again.stderr, /already exists/)
  const http = await tessera(['clients', 'add', 'unsafe', '--redirect-uri', 'http://app.example.com/cb'], env)
  t.equal(http.code, 1)
  t.match(http.stderr, /must use https/)
  const none = await tessera(['clients', 'add', 'nowhere'], env)
  t.equal(none.code, 1)
  t.match(none.stderr, /at least one --redirect-uri/)
})
