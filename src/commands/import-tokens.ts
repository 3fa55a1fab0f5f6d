// Inventory import: rows from a parser become TokenImported (+ TokenAssigned when a user is named), in
// batches of one transaction each, written with COPY: the events (their hashes chained as they are
// written, event-store/copy-append.ts), the inline projections' rows and the sealed seeds. No row is ever
// half-written; a bad row is reported with its line and reason and the good rows still import. Batches
// hold distinct tokens (the parsers refuse a serial repeated in the file), so several are written at once,
// each on a connection of its own, while the next one is read, parsed and sealed.
import { sql } from 'kysely'
import { decide } from '../domain/token/decide.js'
import { tokenStream } from '../domain/token/events.js'
import { initialState } from '../domain/token/state.js'
import { evolve } from '../domain/token/state.js'
import { arrayLiteral } from '../db/array-literal.js'
import { copyBytea, copyIn, copyText } from '../db/copy.js'
import { withConnection } from '../db/database.js'
import { copyNewStreams, type NewStream } from '../event-store/copy-append.js'
import { rowFromState, type TokensTable } from '../read-models/tokens.js'
import type { EventMetadata } from '../event-store/types.js'
import type { ImportedToken, InventoryFormat, ParsedRow, RejectedRow } from '../import/types.js'
import { usersByUpn } from '../read-models/users.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'

/** Tokens per batch: one transaction. */
export const DEFAULT_BATCH_SIZE = 2000
/** Batches written at the same time: one is built while another is written. */
export const DEFAULT_CONCURRENCY = 2

/** Stands for the time the events are recorded while folding; imported_at is the append's recorded time. */
const IMPORTED_AT = new Date(8.64e15)

export interface ImportReport {
  imported: number
  rejected: RejectedRow[]
}

export interface ImportOptions {
  format: InventoryFormat
  /** Tokens per batch (one transaction). */
  batchSize?: number
  /** Batches written at the same time, each on its own connection. */
  concurrency?: number
  /** Called after each batch with the rows read so far. */
  onProgress?: (rowsRead: number, imported: number) => void
}

const TOKEN_COLUMNS = ['serial', 'status', 'kind', 'algorithm', 'digits', 'period', 'counter', 'manufacturer', 'model', 'user_id',
  'seed_fingerprint', 'version'] as const satisfies readonly (keyof TokensTable)[]
const COPY_TOKENS = `copy tokens (${TOKEN_COLUMNS.join(', ')}, imported_at) from stdin`
const COPY_STREAMS = 'copy streams (stream_id, category, version, last_type, created_at, updated_at) from stdin'
const COPY_SECRETS = 'copy token_secrets (serial, key_id, nonce, ciphertext) from stdin'

async function importBatch(
  ctx: CommandContext,
  batch: ImportedToken[],
  source: 'entra-csv' | 'oath-csv',
  meta: EventMetadata,
): Promise<{ imported: number; rejected: RejectedRow[] }> {
  for (let attempt = 0; ; attempt++) {
    const rejected: RejectedRow[] = []
    const existing = new Set((await sql<{ serial: string }>`
      select serial from tokens where serial = any(${arrayLiteral(batch.map((t) => t.serial))}::text[])`.execute(ctx.db)).rows.map((r) => r.serial))
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

    // The rows the inline projections would write (tested by a rebuild), but for the recorded time, which
    // the event append learns from the server; the sealed seeds.
    const streams: NewStream[] = []
    const tokenRows: string[] = []
    const streamRows: string[] = []
    let secretRows = ''
    for (const { token, userId } of good) {
      const decision = decide(initialState(token.serial), {
        type: 'ImportToken',
        data: {
          serial: token.serial, kind: token.kind, algorithm: token.algorithm, digits: token.digits, period: token.period,
          counter: token.counter, manufacturer: token.manufacturer, model: token.model,
          seedFingerprint: ctx.vault.fingerprint(token.seed), source, userId,
        },
      })
      const streamId = tokenStream(token.serial)
      streams.push({ streamId, events: decision.events })
      let state = initialState(token.serial)
      for (const e of decision.events) state = evolve(state, e, IMPORTED_AT)
      const row = rowFromState(state)
      let line = ''
      for (const column of TOKEN_COLUMNS) line += `${copyText(row[column] as string | number | null)}\t`
      tokenRows.push(line)
      streamRows.push(`${copyText(streamId)}\ttoken\t${state.version}\t${decision.events[decision.events.length - 1]!.type}\t`)
      const sealed = ctx.vault.seal(token.serial, token.seed)
      secretRows += `${copyText(token.serial)}\t${copyText(sealed.keyId)}\t${copyBytea(sealed.nonce)}\t${copyBytea(sealed.ciphertext)}\n`
    }
    try {
      await withConnection(ctx.db, async (client) => {
        await client.query('begin')
        const at = await copyNewStreams(client, streams, meta)
        const time = `${at}\n`
        await copyIn(client, COPY_TOKENS, tokenRows.join(time) + time)
        await copyIn(client, COPY_STREAMS, streamRows.join(`${at}\t${time}`) + `${at}\t${time}`)
        await copyIn(client, COPY_SECRETS, secretRows)
        await client.query('commit')
      })
      ctx.store.committed()
      return { imported: good.length, rejected }
    } catch (error) {
      // Another import took one of these serials meanwhile: check the batch again. The transaction was
      // rolled back with its connection, which an error closes.
      const code = (error as { code?: string }).code
      if (code === '23505' && attempt < MAX_CONFLICT_RETRIES) continue
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
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY)
  const report: ImportReport = { imported: 0, rejected: [] }
  let read = 0
  let batch: ImportedToken[] = []
  const inFlight = new Set<Promise<void>>()
  let failure: { error: unknown } | null = null
  const write = (mine: ImportedToken[]) => {
    const done: Promise<void> = importBatch(ctx, mine, source, meta)
      .then((result) => {
        report.imported += result.imported
        report.rejected.push(...result.rejected)
        options.onProgress?.(read, report.imported)
      }, (error: unknown) => {
        failure ??= { error }
      })
      .finally(() => {
        for (const token of mine) token.seed.fill(0)
        inFlight.delete(done)
      })
    inFlight.add(done)
  }
  try {
    for await (const row of rows) {
      read++
      if (!row.ok) {
        report.rejected.push(row.rejected)
        continue
      }
      batch.push(row.token)
      if (batch.length < batchSize) continue
      while (inFlight.size >= concurrency) await Promise.race(inFlight)
      if (failure) break
      write(batch)
      batch = []
    }
    if (!failure && batch.length > 0) write(batch)
  } finally {
    // A batch that failed, or a file that turned out unreadable, still lets the batches in flight finish.
    await Promise.all(inFlight)
    for (const token of batch) token.seed.fill(0)
  }
  if (failure) throw (failure as { error: unknown }).error
  report.rejected.sort((a, b) => a.line - b.line)
  return report
}
