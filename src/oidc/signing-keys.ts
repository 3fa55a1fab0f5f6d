// ID token signing keys: ES256 (P-256), the private half sealed by the seed vault (additional data:
// the key id). The newest key signs; older ones stay in the JWKS until the tokens they signed expire.
import { createHash, generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import { sql } from 'kysely'
import type { SeedVault } from '../crypto/vault.js'
import type { Db } from '../read-models/database.js'

/** How long a replaced key stays published: longer than any token it signed lives. */
export const RETIRED_KEY_GRACE_HOURS = 24

function thumbprint(jwk: JsonWebKey): string {
  // RFC 7638: the required members in lexicographic order.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16)
}

export async function createSigningKey(db: Db, vault: SeedVault): Promise<string> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const privateJwk = privateKey.export({ format: 'jwk' })
  const publicJwk = publicKey.export({ format: 'jwk' })
  const kid = thumbprint(publicJwk)
  const sealed = vault.seal(`signing-key:${kid}`, Buffer.from(JSON.stringify(privateJwk)))
  await db.insertInto('signing_keys').values({
    kid, alg: 'ES256', public_jwk: JSON.stringify({ ...publicJwk, kid, alg: 'ES256', use: 'sig' }),
    key_id: sealed.keyId, nonce: sealed.nonce, ciphertext: sealed.ciphertext, retired_at: null,
  }).execute()
  return kid
}

/** The private JWKs to sign with, newest first; creates the first key when there is none. */
export async function loadSigningKeys(db: Db, vault: SeedVault): Promise<JsonWebKey[]> {
  // One process creates the first key; others starting at the same time wait for it.
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('tessera signing keys'))`.execute(trx)
    const any = await trx.selectFrom('signing_keys').select('kid').where('retired_at', 'is', null).executeTakeFirst()
    if (!any) await createSigningKey(trx as unknown as Db, vault)
  })
  const rows = await db.selectFrom('signing_keys').selectAll()
    .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', sql<Date>`now() - make_interval(hours => ${RETIRED_KEY_GRACE_HOURS})`)]))
    .orderBy('retired_at', (ob) => ob.desc().nullsFirst()).orderBy('created_at', 'desc').execute()
  return rows.map((row) => {
    const jwk = JSON.parse(vault.open(`signing-key:${row.kid}`, { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext }).toString()) as JsonWebKey
    return { ...jwk, kid: row.kid, alg: row.alg, use: 'sig' }
  })
}

/** A new signing key; the current one is retired but stays published for the grace period. */
export async function rotateSigningKey(db: Db, vault: SeedVault): Promise<{ kid: string; retired: string[] }> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('tessera signing keys'))`.execute(trx)
    const retired = await trx.updateTable('signing_keys').set({ retired_at: new Date() }).where('retired_at', 'is', null).returning('kid').execute()
    const kid = await createSigningKey(trx as unknown as Db, vault)
    return { kid, retired: retired.map((r) => r.kid) }
  })
}
