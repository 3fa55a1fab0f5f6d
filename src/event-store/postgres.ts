// The event store on PostgreSQL: one append-only table (migrations/0001_event_store.ts).
// - An append is one INSERT statement: the table's trigger checks the expected version and chains the hash.
// - readAll delivers in (transaction id, position) order and only below the oldest running transaction,
//   so an event that commits late with a lower position is never skipped.
// - Appends wake subscribers in this process at once and in other processes through a debounced NOTIFY
//   sent after commit; a NOTIFY inside the append would serialise every commit on the notify queue lock.
import { timedAppend } from '../metrics.js'
import { EventEmitter } from 'node:events'
import { sql, type RawBuilder } from 'kysely'
import type { Db, Executor } from '../read-models/database.js'
import type {
  AppendResult, EventMetadata, ExpectedVersion, GlobalPosition, NewEvent, ReadAllResult, ReadStreamOptions,
  RecordedEvent,
} from './types.js'
import { arrayLiteral } from '../db/array-literal.js'
import { InvalidEvent, StreamNotFound, WrongExpectedVersion } from './errors.js'
import { checkEvents, checkExpectedVersion, checkMetadata, checkStreamId } from './validate.js'
import { GroupCommit } from './group-commit.js'

export const NOTIFY_CHANNEL = 'tessera_events'

interface EventRow {
  position: string
  tx_id: string
  stream_id: string
  stream_version: number
  type: string
  data: Record<string, unknown>
  metadata: string
  recorded_ms: number
  hash?: Buffer
}

// Read as text and epoch milliseconds: pg's date parser and a JSON.parse per row of metadata (often
// the same for a whole batch) were most of a replay's time.
const SELECTED = `position, tx_id, stream_id, stream_version, type, data, metadata::text as metadata,
  (extract(epoch from recorded_at) * 1000)::float8 as recorded_ms`
const COLUMNS = sql.raw(SELECTED)
const WITH_HASH = sql.raw(`${SELECTED}, hash`)

/** Parses each distinct metadata text once per read; the objects are frozen, so sharing is safe. */
class MetadataCache {
  private readonly seen = new Map<string, EventMetadata>()
  parse(text: string): EventMetadata {
    let m = this.seen.get(text)
    if (!m) {
      m = Object.freeze(JSON.parse(text)) as EventMetadata
      if (this.seen.size < 1000) this.seen.set(text, m)
    }
    return m
  }
}

function toEvents(rows: EventRow[]): RecordedEvent[] {
  const metadata = new MetadataCache()
  return rows.map((row) => ({
    position: Number(row.position),
    txId: row.tx_id,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    type: row.type,
    data: row.data,
    metadata: metadata.parse(row.metadata),
    recordedAt: new Date(row.recorded_ms),
    ...(row.hash ? { hash: row.hash } : {}),
  }))
}

interface PgError {
  code?: string
  constraint?: string
  detail?: string
  hint?: string
}

export interface StreamWrite {
  streamId: string
  expected: ExpectedVersion
  events: readonly NewEvent[]
  /** This write's own metadata; defaults to the call's. */
  metadata?: EventMetadata
}


export interface PostgresEventStoreOptions {
  /** Send NOTIFY to other processes at most this often after appends (ms); 0 disables it. */
  notifyDebounceMs?: number
  /**
   * Group commit: appends made in the same tick of the event loop (each outside a transaction of its
   * caller's) go to the database as one statement, one round trip and one WAL flush. Default on.
   */
  groupCommit?: boolean
}

export class PostgresEventStore {
  /** 'appended' fires after a commit in this process, so local subscribers need no round trip. */
  readonly wakeups = new EventEmitter()
  private notifyTimer: NodeJS.Timeout | null = null
  private readonly notifyDebounceMs: number
  private readonly groupCommit: boolean
  // Appends outside a caller's transaction; appendStreams signals the commit itself.
  private readonly group = new GroupCommit<StreamWrite & { metadata: EventMetadata }, AppendResult>(
    (w) => w.streamId, (writes) => this.appendStreams(writes, writes[0]!.metadata))

  constructor(
    private readonly db: Db,
    options: PostgresEventStoreOptions = {},
  ) {
    this.notifyDebounceMs = options.notifyDebounceMs ?? 10
    this.groupCommit = options.groupCommit ?? true
    this.wakeups.setMaxListeners(0)
  }

  /**
   * Appends all events or none. With `trx`, the append joins the caller's transaction (inline projections)
   * and the caller calls `committed()` after it commits.
   */
  async append(
    streamId: string,
    expected: ExpectedVersion,
    events: readonly NewEvent[],
    metadata: EventMetadata,
    trx?: Executor,
  ): Promise<AppendResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (!trx && this.groupCommit) return await this.enqueue({ streamId, expected, events, metadata })
        const [result] = await this.appendStreams([{ streamId, expected, events }], metadata, trx)
        return result!
      } catch (error) {
        // 'any' has no version to be wrong about: take the next one. Inside a caller's transaction
        // the failed statement has aborted it, so the caller retries instead.
        if (error instanceof WrongExpectedVersion && expected === 'any' && !trx && attempt < 5) continue
        throw error
      }
    }
  }

  private enqueue(write: StreamWrite & { metadata: EventMetadata }): Promise<AppendResult> {
    // Checked here, so a bad append fails alone instead of failing its group.
    checkStreamId(write.streamId)
    checkExpectedVersion(write.expected)
    checkMetadata(write.metadata)
    checkEvents(write.events, JSON.stringify(write.metadata))
    return this.group.submit(write)
  }

  /**
   * Appends to several streams in one statement, all or nothing (an inventory import). Each stream
   * appears once. With `trx`, the append joins the caller's transaction and the caller calls
   * `committed()` after it commits.
   */
  async appendStreams(writes: readonly StreamWrite[], metadata: EventMetadata, trx?: Executor): Promise<AppendResult[]> {
    return timedAppend('store', () => this.appendStreamsUntimed(writes, metadata, trx))
  }

  private async appendStreamsUntimed(writes: readonly StreamWrite[], metadata: EventMetadata, trx?: Executor): Promise<AppendResult[]> {
    checkMetadata(metadata)
    const callJson = JSON.stringify(metadata)
    const rows: RawBuilder<unknown>[] = []
    for (const { streamId, expected, events, metadata: own } of writes) {
      checkStreamId(streamId)
      checkExpectedVersion(expected)
      if (own) checkMetadata(own)
      const metadataJson = own ? JSON.stringify(own) : callJson
      const datas = checkEvents(events, metadataJson)
      const first = expected === 'any' ? null : expected === 'no-stream' ? 1 : expected + 1
      events.forEach((event, i) => rows.push(
        sql`(${streamId}, ${first === null ? null : first + i}::integer, ${event.type}, ${datas[i]}::jsonb, ${metadataJson}::jsonb)`))
    }
    if (rows.length === 0) return []
    try {
      // The caller has the data and metadata: only what the database adds comes back.
      const result = await sql<{ position: string; tx_id: string; stream_id: string; stream_version: number; recorded_ms: number; hash: Buffer }>`
        insert into events (stream_id, stream_version, type, data, metadata)
        values ${sql.join(rows)}
        returning position, tx_id, stream_id, stream_version, (extract(epoch from recorded_at) * 1000)::float8 as recorded_ms, hash`
        .execute(trx ?? this.db)
      if (!trx) this.committed()
      const byStream = new Map<string, typeof result.rows>()
      for (const row of result.rows) {
        const list = byStream.get(row.stream_id)
        if (list) list.push(row)
        else byStream.set(row.stream_id, [row])
      }
      return writes.map(({ streamId, events, metadata: own }) => {
        const returned = byStream.get(streamId)!.sort((a, b) => a.stream_version - b.stream_version)
        const recorded = returned.map((row, i): RecordedEvent => ({
          position: Number(row.position), txId: row.tx_id, streamId, streamVersion: row.stream_version,
          type: events[i]!.type, data: events[i]!.data as Record<string, unknown>, metadata: own ?? metadata, recordedAt: new Date(row.recorded_ms), hash: row.hash,
        }))
        return { nextVersion: recorded[recorded.length - 1]!.streamVersion, events: recorded }
      })
    } catch (error) {
      const e = error as PgError
      // The trigger names the stream in HINT; a unique-key race names it in DETAIL.
      const named = e.hint ?? (e.detail ?? '').match(/\(stream_id, stream_version\)=\((.+), \d+\)/)?.[1]
      const write = writes.find((w) => w.streamId === named) ?? writes[0]!
      if (e.code === '23505' && e.constraint === 'events_stream_version_key') {
        // Outside a transaction of the caller's, say where the stream is (the error path only).
        const actual = trx ? null : await this.streamVersion(write.streamId).catch(() => null)
        throw new WrongExpectedVersion(write.streamId, write.expected, actual)
      }
      if (e.code === 'TS001') throw new WrongExpectedVersion(write.streamId, write.expected, Number(e.detail))
      if (e.code === 'TS002') throw new StreamNotFound(write.streamId)
      throw error
    }
  }

  /** Tells subscribers that a transaction holding appends has committed. */
  committed(): void {
    this.wakeups.emit('appended')
    if (this.notifyDebounceMs <= 0 || this.notifyTimer) return
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = null
      sql`select pg_notify(${NOTIFY_CHANNEL}, '')`.execute(this.db).catch(() => {
        // Other processes fall back to polling; nothing is lost.
      })
    }, this.notifyDebounceMs)
    this.notifyTimer.unref()
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}, db: Executor = this.db): Promise<RecordedEvent[]> {
    checkStreamId(streamId)
    const backward = options.direction === 'backward'
    const limit = options.limit ?? 1_000_000
    const from = options.from ?? (backward ? 2 ** 31 - 1 : 1)
    const result = await sql<EventRow>`
      select ${WITH_HASH} from events
      where stream_id = ${streamId}
        and stream_version ${sql.raw(backward ? '<=' : '>=')} ${from}
      order by stream_version ${sql.raw(backward ? 'desc' : 'asc')}
      limit ${limit}`.execute(db)
    if (result.rows.length === 0 && !(await this.streamExists(streamId, db))) throw new StreamNotFound(streamId)
    return toEvents(result.rows)
  }

  /** The stream's version, or 0 when it has no event. */
  async streamVersion(streamId: string, db: Executor = this.db): Promise<number> {
    checkStreamId(streamId)
    const result = await sql<{ v: number | null }>`
      select max(stream_version) as v from events where stream_id = ${streamId}`.execute(db)
    return result.rows[0]?.v ?? 0
  }

  private async streamExists(streamId: string, db: Executor): Promise<boolean> {
    return (await this.streamVersion(streamId, db)) > 0
  }

  /**
   * Events after `after` in the global order, at most `limit`. Only transactions older than the oldest
   * one still running are read: their set of events can no longer grow.
   */
  async readAll(after: GlobalPosition, limit: number, db: Executor = this.db, options: { hash?: boolean } = {}): Promise<ReadAllResult> {
    const result = await sql<EventRow>`
      select ${options.hash ? WITH_HASH : COLUMNS} from events
      where (tx_id, position) > (${after.txId}::xid8, ${after.position}::bigint)
        and tx_id < pg_snapshot_xmin(pg_current_snapshot())
      order by tx_id, position
      limit ${limit}`.execute(db)
    const events = toEvents(result.rows)
    const last = events[events.length - 1]
    return { events, next: last ? { txId: last.txId, position: last.position } : after }
  }

  /** Pages through every event in the global order, `pageSize` at a time; memory stays flat. */
  async *readAllPages(after: GlobalPosition, pageSize = 5_000, db: Executor = this.db): AsyncGenerator<RecordedEvent[]> {
    let position = after
    for (;;) {
      const page = await this.readAll(position, pageSize, db)
      if (page.events.length === 0) return
      yield page.events
      position = page.next
      if (page.events.length < pageSize) return
    }
  }

  close(): void {
    if (this.notifyTimer) clearTimeout(this.notifyTimer)
    this.notifyTimer = null
    this.wakeups.removeAllListeners()
  }
}

/** Events of many streams for `appendEventsCall`, as column arrays; `data` is JSON as `checkEvents` returns it. */
export interface EventColumns {
  streamId: string[]
  version: number[]
  type: string[]
  data: string[]
}

/**
 * The SQL call that appends these events with their given versions (migrations/0009_bulk_append.ts): one
 * metadata for all of them, hashes chained set-based with exactly the bytes the row trigger uses. A version 1
 * must be new and a later version's predecessor must exist or come in the same call, else the statement fails
 * (unique violation 23505, or TS002). For a statement of the caller's (an import writes its read models in
 * the same one); the caller calls `committed()` after it commits.
 */
export function appendEventsCall(events: EventColumns, metadataJson: string): RawBuilder<unknown> {
  // The data go as one text, a line each: JSON.stringify never writes a raw line break, and pg's array
  // serializer would escape every quote of every event (most of an import's client time).
  for (const data of events.data) if (data.includes('\n')) throw new InvalidEvent('event data must be JSON on one line')
  return sql`tessera_append_events(${arrayLiteral(events.streamId)}::text[], ${arrayLiteral(events.version)}::integer[], ${arrayLiteral(events.type)}::text[],
    string_to_array(${events.data.join('\n')}::text, chr(10))::jsonb[], ${metadataJson}::jsonb)`
}
