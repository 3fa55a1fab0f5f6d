// Re-encrypts every seed that is not under the vault's current master key, a batch at a time, so the
// gateway keeps serving: a reader decrypts each seed with the key its row names.
import { sql } from 'kysely'
import type { SeedVault } from '../crypto/vault.js'
import type { Db } from '../read-models/database.js'

export async function reencryptSeeds(db: Db, vault: SeedVault, batchSize = 500): Promise<number> {
  let total = 0
  for (;;) {
    const done = await db.transaction().execute(async (trx) => {
      const rows = await sql<{ serial: string; key_id: string; nonce: Buffer; ciphertext: Buffer }>`
        select serial, key_id, nonce, ciphertext from token_secrets where key_id <> ${vault.currentKeyId}
        limit ${batchSize} for update skip locked`.execute(trx)
      for (const row of rows.rows) {
        const seed = vault.open(row.serial, { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext })
        const sealed = vault.seal(row.serial, seed)
        seed.fill(0)
        await sql`update token_secrets set key_id = ${sealed.keyId}, nonce = ${sealed.nonce}, ciphertext = ${sealed.ciphertext}
                  where serial = ${row.serial}`.execute(trx)
      }
      return rows.rows.length
    })
    total += done
    if (done < batchSize) return total
  }
}
