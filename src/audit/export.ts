// Exports events as JSON lines or CSV, page by page (memory stays flat), in position order. Each event
// carries its position, its hash, the previous hash of its stream and the exact bytes the hash covers,
// so an export can be checked offline: sha256(previousHash || bytes) must equal hash.
import { Readable } from 'node:stream'
import { sql } from 'kysely'
import type { Executor } from '../read-models/database.js'

export interface ExportFilter {
  from?: Date
  to?: Date
  streamId?: string
  types?: string[]
}

export type ExportFormat = 'jsonl' | 'csv'

interface Row {
  position: string
  tx_id: string
  stream_id: string
  stream_version: number
  type: string
  recorded_at: string
  data: string
  metadata: string
  hash: string
  previous_hash: string
}

/**
 * The bytes the hash covers, as tessera_event_bytes (migrations/0001) writes them: built here from the
 * texts already read, so the database prints data and metadata once. Stream ids and types are printable
 * ASCII, for which JSON.stringify escapes exactly as PostgreSQL's to_json does.
 */
export function eventBytes(row: Pick<Row, 'stream_id' | 'stream_version' | 'type' | 'data' | 'metadata' | 'recorded_at'>): string {
  return `[${JSON.stringify(row.stream_id)}, ${row.stream_version}, ${JSON.stringify(row.type)}, ${row.data}, ${row.metadata}, "${row.recorded_at}"]`
}

const CSV_HEADER = 'position,tx_id,stream_id,stream_version,type,recorded_at,data,metadata,hash,previous_hash,bytes\n'

function csvField(value: string | number): string {
  const s = String(value)
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

function format(row: Row, as: ExportFormat): string {
  if (as === 'csv') {
    return [row.position, row.tx_id, row.stream_id, row.stream_version, row.type, row.recorded_at, row.data, row.metadata, row.hash, row.previous_hash, eventBytes(row)]
      .map(csvField).join(',') + '\n'
  }
  // data and metadata are spliced in as the database's own JSON text: no parse, no re-serialisation.
  return `{"position":${row.position},"txId":"${row.tx_id}","streamId":${JSON.stringify(row.stream_id)},"streamVersion":${row.stream_version},`
    + `"type":${JSON.stringify(row.type)},"recordedAt":"${row.recorded_at}","data":${row.data},"metadata":${row.metadata},`
    + `"hash":"${row.hash}","previousHash":"${row.previous_hash}","bytes":${JSON.stringify(eventBytes(row))}}\n`
}

async function page(db: Executor, filter: ExportFilter, after: number, limit: number): Promise<Row[]> {
  const where = [sql`e.position > ${after}`]
  if (filter.streamId) where.push(sql`e.stream_id = ${filter.streamId}`)
  if (filter.types?.length) where.push(sql`e.type = any(${filter.types}::text[])`)
  if (filter.from) where.push(sql`e.recorded_at >= ${filter.from}`)
  if (filter.to) where.push(sql`e.recorded_at < ${filter.to}`)
  const result = await sql<Row>`
    select e.position::text, e.tx_id::text, e.stream_id, e.stream_version, e.type,
      to_char(e.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as recorded_at,
      e.data::text as data, e.metadata::text as metadata, encode(e.hash, 'hex') as hash,
      encode(coalesce(p.hash, ''::bytea), 'hex') as previous_hash
    from events e
    left join events p on p.stream_id = e.stream_id and p.stream_version = e.stream_version - 1
    where ${sql.join(where, sql` and `)}
    order by e.position limit ${limit}`.execute(db)
  return result.rows
}

/** A readable stream of the export; it reads the next page only when the consumer wants more. */
export function exportEvents(db: Executor, filter: ExportFilter, as: ExportFormat, pageSize = 5000): Readable {
  let after = 0
  let headerSent = as !== 'csv'
  let done = false
  return new Readable({
    async read() {
      try {
        if (!headerSent) {
          headerSent = true
          this.push(CSV_HEADER)
        }
        if (done) return void this.push(null)
        const rows = await page(db, filter, after, pageSize)
        if (rows.length < pageSize) done = true
        if (rows.length === 0) return void this.push(null)
        after = Number(rows[rows.length - 1]!.position)
        this.push(rows.map((r) => format(r, as)).join(''))
      } catch (error) {
        this.destroy(error as Error)
      }
    },
  })
}
