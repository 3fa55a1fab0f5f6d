// Inventory import: rows from a parser become TokenImported (+ TokenAssigned when a user is named),
// in batches of one statement each. A batch is one transaction: no row is ever half-written; a bad row
// is reported with its line and reason and the good rows still import. Batches hold distinct tokens (the
// parsers refuse a serial repeated in the file), so several are written at once, each on a connection of
// its own, while the next one is read, parsed and sealed.
import { sql } from 'kysely'
import { decide } from '../domain/token/decide.js'
import { tokenStream } from '../domain/token/events.js'
import { initialState } from '../domain/token/state.js'
import { evolve } from '../domain/token/state.js'
import { arrayLiteral, byteaArrayLiteral } from '../db/array-literal.js'
import { checkEvents } from '../event-store/validate.js'
import { rowFromState, type TokensTable } from '../read-models/tokens.js'
import { appendEventsCall, type EventColumns } from '../event-store/postgres.js'
import type { EventMetadata } from '../event-store/types.js'
import type { ImportedToken, InventoryFormat, ParsedRow, RejectedRow } from '../import/types.js'
import { usersByUpn } from '../read-models/users.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'
import { imports } from '../metrics.js'

/** Tokens per batch: one statement and transaction. */
export const DEFAULT_BATCH_SIZE = 2000
/** Batches written at the same time: one is built while another is written. */
export const DEFAULT_CONCURRENCY = 2

/** Stands for the time the events are recorded while folding; the statement writes now(). */
const IMPORTED_AT = new Date(8.64e15)

/** Refused rows reported one by one; past them, counted by reason: a file of any size has a report of bounded size. */
export const MAX_REPORTED_ROWS = 1000
/** Distinct reasons counted; past them, the rest count as "other reasons". */
const MAX_REASONS = 100

export interface ImportReport {
  imported: number
  /** The first MAX_REPORTED_ROWS refused rows (in the order they were refused, sorted by line). */
  rejected: RejectedRow[]
  /** Every refused row. */
  rejectedCount: number
  /** Every refused row, counted by its reason. */
  rejectedByReason: Record<string, number>
}

/** Counts a refused row; keeps it only while the report has room. */
function refuse(report: ImportReport, row: RejectedRow): void {
  report.rejectedCount++
  if (report.rejected.length < MAX_REPORTED_ROWS) report.rejected.push(row)
  // A reason names a value at times (an unknown user): those are counted by their kind of reason.
  const reason = row.reason.replace(/^unknown user .*/, 'unknown user').replace(/\(first on line \d+\)/, '(first on an earlier line)')
  const counts = report.rejectedByReason
  if (reason in counts || Object.keys(counts).length < MAX_REASONS) counts[reason] = (counts[reason] ?? 0) + 1
  else counts['other reasons'] = (counts['other reasons'] ?? 0) + 1
}

export interface ImportOptions {
  format: InventoryFormat
  /** Tokens per batch (one statement and transaction). */
  batchSize?: number
  /** Batches written at the same time, each on its own connection. */
  concurrency?: number
  /** Called after each batch with the rows read so far. */
  onProgress?: (rowsRead: number, imported: number) => void
}

async function importBatch(
  ctx: CommandContext,
  batch: ImportedToken[],
  source: 'entra-csv' | 'oath-csv' | 'pskc',
  meta: EventMetadata,
  inTransaction = false,
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

    const metadataJson = JSON.stringify(meta)
    const events: EventColumns = { streamId: [], version: [], type: [], data: [] }
    const rows: TokensTable[] = []
    const streams = { stream: [] as string[], version: [] as number[], type: [] as string[] }
    const secrets = { keyId: [] as string[], nonce: [] as Buffer[], ciphertext: [] as Buffer[] }
    for (const { token, userId } of good) {
      const decision = decide(initialState(token.serial), {
        type: 'ImportToken',
        data: {
          serial: token.serial, kind: token.kind, algorithm: token.algorithm, digits: token.digits, period: token.period,
          counter: token.counter, manufacturer: token.manufacturer, model: token.model,
          seedFingerprint: ctx.vault.fingerprint(token.seed), source, userId,
        },
      })
      const stream = tokenStream(token.serial)
      const datas = checkEvents(decision.events, metadataJson)
      decision.events.forEach((e, i) => {
        events.streamId.push(stream)
        events.version.push(i + 1)
        events.type.push(e.type)
        events.data.push(datas[i]!)
      })
      let state = initialState(token.serial)
      for (const e of decision.events) state = evolve(state, e, IMPORTED_AT)
      rows.push(rowFromState(state))
      streams.stream.push(stream)
      streams.version.push(state.version)
      streams.type.push(decision.events[decision.events.length - 1]!.type)
      const sealed = ctx.vault.seal(token.serial, token.seed)
      secrets.keyId.push(sealed.keyId)
      secrets.nonce.push(sealed.nonce)
      secrets.ciphertext.push(sealed.ciphertext)
    }
    const col = <K extends keyof TokensTable>(k: K) => arrayLiteral(rows.map((r) => r[k] as string | number | null))
    const serials = col('serial')
    // Inside the whole file's transaction, a conflict must not abort it: the batch is its own savepoint.
    if (inTransaction) await sql`savepoint import_batch`.execute(ctx.db)
    try {
      // One statement: the tokens and streams rows the inline projections would write (tested by a rebuild),
      // the sealed seeds, and the events (their hashes chained set-based by the store's bulk append).
      // Column arrays, not one parameter per value.
      await sql`
        with token as (
          insert into tokens (serial, status, kind, algorithm, digits, period, counter, manufacturer, model, user_id, name, last_step,
                              drift, activation_failures, failures, locked_until, lock_count, last_used_at, seed_fingerprint,
                              activated_at, imported_at, version)
          select serial, status, kind, algorithm, digits, period, counter, manufacturer, model, user_id, null, null,
                 0, 0, 0, null, 0, null, seed_fingerprint, null, now(), version
          from unnest(${serials}::text[], ${col('status')}::text[], ${col('kind')}::text[], ${col('algorithm')}::text[],
                      ${col('digits')}::smallint[], ${col('period')}::smallint[], ${col('counter')}::bigint[], ${col('manufacturer')}::text[],
                      ${col('model')}::text[], ${col('user_id')}::text[], ${col('seed_fingerprint')}::text[], ${col('version')}::int[])
            as t(serial, status, kind, algorithm, digits, period, counter, manufacturer, model, user_id, seed_fingerprint, version)
        ), stream as (
          insert into streams (stream_id, category, version, last_type, created_at, updated_at)
          select stream, 'token', version, type, now(), now()
          from unnest(${arrayLiteral(streams.stream)}::text[], ${arrayLiteral(streams.version)}::int[], ${arrayLiteral(streams.type)}::text[])
            as s(stream, version, type)
        ), secret as (
          insert into token_secrets (serial, key_id, nonce, ciphertext)
          select * from unnest(${serials}::text[], ${arrayLiteral(secrets.keyId)}::text[], ${byteaArrayLiteral(secrets.nonce)}::bytea[],
                               ${byteaArrayLiteral(secrets.ciphertext)}::bytea[])
        )
        select ${appendEventsCall(events, metadataJson)}
      `.execute(ctx.db)
      if (inTransaction) await sql`release savepoint import_batch`.execute(ctx.db)
      else ctx.store.committed()
      return { imported: good.length, rejected }
    } catch (error) {
      if (inTransaction) await sql`rollback to savepoint import_batch`.execute(ctx.db)
      // Another import took one of these serials meanwhile: check the batch again.
      const code = (error as { code?: string }).code
      if ((code === '23505' || code === 'TS001') && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

/**
 * Imports the rows. A PSKC file is imported in one transaction (its batches as savepoints, one at a time):
 * an XML file is only known whole and well-formed at its end, so one cut short or broken writes nothing.
 * A CSV file's batches commit as they go: a bad line is refused by itself and an unusable file at its start.
 */
export async function importTokens(
  ctx: CommandContext,
  rows: AsyncIterable<ParsedRow>,
  meta: EventMetadata,
  options: ImportOptions,
): Promise<ImportReport> {
  const report = options.format === 'pskc'
    ? await ctx.db.transaction().execute((trx) => importRows({ ...ctx, db: trx }, rows, meta, options, true))
    : await importRows(ctx, rows, meta, options, false)
  if (options.format === 'pskc') ctx.store.committed()
  imports.inc({ format: options.format, result: 'imported' }, report.imported)
  imports.inc({ format: options.format, result: 'refused' }, report.rejectedCount)
  return report
}

async function importRows(
  ctx: CommandContext,
  rows: AsyncIterable<ParsedRow>,
  meta: EventMetadata,
  options: ImportOptions,
  inTransaction: boolean,
): Promise<ImportReport> {
  const source = options.format === 'entra' ? 'entra-csv' : options.format === 'oath' ? 'oath-csv' : 'pskc'
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
  // One transaction has one connection: its batches go one at a time (the next is read while one is written).
  const concurrency = inTransaction ? 1 : Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY)
  const report: ImportReport = { imported: 0, rejected: [], rejectedCount: 0, rejectedByReason: {} }
  let read = 0
  let batch: ImportedToken[] = []
  const inFlight = new Set<Promise<void>>()
  let failure: { error: unknown } | null = null
  const write = (mine: ImportedToken[]) => {
    const done: Promise<void> = importBatch(ctx, mine, source, meta, inTransaction)
      .then((result) => {
        report.imported += result.imported
        for (const r of result.rejected) refuse(report, r)
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
        refuse(report, row.rejected)
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
