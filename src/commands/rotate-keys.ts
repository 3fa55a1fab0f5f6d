// Re-encrypts every sealed secret that is not under the vault's current master key, a batch at a time, so
// the gateway keeps serving: a reader decrypts each row with the key it names. The tables: token seeds
// (and sent-code destinations) bound to their serial, and remote services' secrets (a PKCS#12 file and its
// password, a RADIUS shared secret) bound to their service.
import { sql } from 'kysely'
import type { SeedVault } from '../crypto/vault.js'
import type { Db } from '../read-models/database.js'

const SEALED = [
  { table: 'token_secrets', key: 'serial', aad: (key: string) => key },
  { table: 'remote_service_secrets', key: 'id', aad: (key: string) => `remote-service:${key}` },
] as const

export async function reencryptSeeds(db: Db, vault: SeedVault, batchSize = 500): Promise<number> {
  let total = 0
  for (const sealed of SEALED) {
    for (;;) {
      const done = await db.transaction().execute(async (trx) => {
        const rows = await sql<{ key: string; key_id: string; nonce: Buffer; ciphertext: Buffer }>`
          select ${sql.ref(sealed.key)} as key, key_id, nonce, ciphertext from ${sql.table(sealed.table)} where key_id <> ${vault.currentKeyId}
          limit ${batchSize} for update skip locked`.execute(trx)
        for (const row of rows.rows) {
          const plain = vault.open(sealed.aad(row.key), { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext })
          const again = vault.seal(sealed.aad(row.key), plain)
          plain.fill(0)
          await sql`update ${sql.table(sealed.table)} set key_id = ${again.keyId}, nonce = ${again.nonce}, ciphertext = ${again.ciphertext}
                    where ${sql.ref(sealed.key)} = ${row.key}`.execute(trx)
        }
        return rows.rows.length
      })
      total += done
      if (done < batchSize) break
    }
  }
  return total
}

/**
 * Sealed secrets still under another key after a rotation: rows another transaction held (skipped, not
 * waited for), or sealed meanwhile by a process that has not read the new key yet. Run the rotation again.
 */
export async function sealedUnderOtherKeys(db: Db, vault: SeedVault): Promise<number> {
  let left = 0
  for (const sealed of SEALED) {
    const rows = await sql<{ n: string }>`select count(*) as n from ${sql.table(sealed.table)} where key_id <> ${vault.currentKeyId}`.execute(db)
    left += Number(rows.rows[0]!.n)
  }
  return left
}
