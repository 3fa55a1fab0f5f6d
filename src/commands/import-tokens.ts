// Inventory import: rows from a parser become TokenImported (+ TokenAssigned when a user is named),
// in batches of one statement each. A batch is one transaction: no row is ever half-written; a bad row
// is reported with its line and reason and the good rows still import.
import { sql } from 'kysely'
import { decide } from '../domain/token/decide.js'
import { tokenStream } from '../domain/token/events.js'
import { initialState } from '../domain/token/state.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import type { StreamWrite } from '../event-store/postgres.js'
import type { EventMetadata } from '../event-store/types.js'
import type { ImportedToken, InventoryFormat, ParsedRow, RejectedRow } from '../import/types.js'
import { usersByUpn } from '../read-models/users.js'
import { appendStreamsWithProjections } from './append.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'

export interface ImportReport {
  imported: number
  rejected: RejectedRow[]
}

export interface ImportOptions {
  format: InventoryFormat
  batchSize?: number
  /** Called after each batch with the rows read so far. */
  onProgress?: (rowsRead: number, imported: number) => void
}

async function importBatch(
  ctx: CommandContext,
  batch: ImportedToken[],
  source: 'entra-csv' | 'oath-csv',
  meta: EventMetadata,
): Promise<{ imported: number; rejected: RejectedRow[] }> {
  for (let attempt = 0; ; attempt++) {
    const rejected: RejectedRow[] = []
    const existing = new Set((await sql<{ serial: string }>`
      select serial from tokens where serial = any(${batch.map((t) => t.serial)}::text[])`.execute(ctx.db)).rows.map((r) => r.serial))
    const users = await usersByUpn(ctx.db, [...new Set(batch.flatMap((t) => (t.upn ? [t.upn] : [])))])
    const good: { token: ImportedToken; userId: string | null }[] = []
    for (const token of batch) {
      if (existing.has(token.serial)) {
        rejected.push({ line: token.line, serial: token.serial, reason: 'serial already in the inventory' })
      } else if (token.upn && !users.has(token.upn.toLowerCase())) {
        rejected.push({ line: token.line, serial: token.serial, reason: `unknown user ${token.upn}` })
      } else {
        good.push({ token, userId: token.upn ? users.get(token.upn.toLowerCase())! : null })
      }
    }
    if (good.length === 0) return { imported: 0, rejected }

    const writes: StreamWrite[] = []
    const secrets: { serial: string; key_id: string; nonce: Buffer; ciphertext: Buffer }[] = []
    for (const { token, userId } of good) {
      const { events } = decide(initialState(token.serial), {
        type: 'ImportToken',
        data: {
          serial: token.serial, kind: token.kind, algorithm: token.algorithm, digits: token.digits, period: token.period,
          counter: token.counter, manufacturer: token.manufacturer, model: token.model,
          seedFingerprint: ctx.vault.fingerprint(token.seed), source, userId,
        },
      })
      writes.push({ streamId: tokenStream(token.serial), expected: 'no-stream', events })
      const sealed = ctx.vault.seal(token.serial, token.seed)
      secrets.push({ serial: token.serial, key_id: sealed.keyId, nonce: sealed.nonce, ciphertext: sealed.ciphertext })
    }
    try {
      await ctx.db.transaction().execute(async (trx) => {
        await appendStreamsWithProjections({ ...ctx, db: trx, deferCommit: true }, writes, meta)
        await trx.insertInto('token_secrets').values(secrets).execute()
      })
      ctx.store.committed()
      return { imported: good.length, rejected }
    } catch (error) {
      // Another import took one of these serials meanwhile: check the batch again.
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

export async function importTokens(
  ctx: CommandContext,
  rows: AsyncIterable<ParsedRow>,
  meta: EventMetadata,
  options: ImportOptions,
): Promise<ImportReport> {
  const source = options.format === 'entra' ? 'entra-csv' : 'oath-csv'
  const batchSize = options.batchSize ?? 1000
  const report: ImportReport = { imported: 0, rejected: [] }
  let read = 0
  let batch: ImportedToken[] = []
  const flush = async () => {
    if (batch.length === 0) return
    const result = await importBatch(ctx, batch, source, meta)
    for (const token of batch) token.seed.fill(0)
    batch = []
    report.imported += result.imported
    report.rejected.push(...result.rejected)
    options.onProgress?.(read, report.imported)
  }
  for await (const row of rows) {
    read++
    if (!row.ok) {
      report.rejected.push(row.rejected)
      continue
    }
    batch.push(row.token)
    if (batch.length >= batchSize) await flush()
  }
  await flush()
  report.rejected.sort((a, b) => a.line - b.line)
  return report
}
