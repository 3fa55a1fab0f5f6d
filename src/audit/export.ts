// Exports events as JSON lines or CSV, in position order, as one COPY from one snapshot of the log. Each
// event carries its position, its hash, the previous hash of its stream and the exact bytes the hash
// covers, so an export can be checked offline: sha256(previousHash || bytes) must equal hash.
// - It runs on a worker thread (export-worker.ts) with connections of its own: an export of millions of
//   events costs seconds of CPU, which must not stall the gateway's event loop (verifications wait on
//   it).
// - The worker writes the output into a ring of slabs of memory shared with the caller's thread, which
//   writes each filled part to the destination as a view of that memory (no copy) and hands a slab back
//   once the destination has called back for its last part. The ring is all the memory an export's
//   output takes, whatever its size, and no buffer is made per chunk: a gigabyte passing through buffers
//   made and dropped costs both threads a full garbage collection every few dozen megabytes.
// - PostgreSQL sends the columns as stored, in COPY's binary framing: numbers, time and hash in binary,
//   data and metadata as their jsonb text (printed once each), no escaping, one statement.
// - Node splices those bytes into the lines without making strings of them, writing what
//   tessera_event_bytes (migrations/0001) writes: stream id and type quoted as PostgreSQL's to_json
//   quotes text, the time as its to_char prints it. The hashed bytes go out as a JSON string by
//   escaping `"` and `\` (jsonb text and quoted text hold no raw control characters).
// - The previous hash of a stream is the hash of the stream's event before, usually exported just before
//   it: a bounded cache of each stream's last exported hash gives it, and the events it cannot (filtered
//   out, evicted) are looked up by key, a chunk's worth in one query, on a second connection opened
//   when first needed.
// - The COPY is read only as fast as the destination takes the output (memory stays flat, and a slow
//   download holds none of the pool's connections); a destination that closes early ends the worker's
//   export, which closes its connections, and that ends the statement on the server too.
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { Worker } from 'node:worker_threads'
import pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { connectionSettings, openConnection, type ConnectionSettings } from '../db/database.js'
import { exportBytes, exportsRunning } from '../metrics.js'
import type { Db } from '../read-models/database.js'

export interface ExportFilter {
  from?: Date
  to?: Date
  streamId?: string
  types?: string[]
}

export type ExportFormat = 'jsonl' | 'csv'

export interface ExportOptions {
  /** Streams whose last hash is kept for the next event's previous hash (32 bytes and a map entry each). Default 100,000. */
  cachedStreams?: number
}

/** The size of an output slab, and how many an export's ring has: one being filled, the others being written. */
export const SLAB_BYTES = 1 << 20
const SLABS = 4

const CSV_HEADER = 'position,tx_id,stream_id,stream_version,type,recorded_at,data,metadata,hash,previous_hash,bytes\n'

// The COPY's columns, in order, in their binary forms: int8 and xid8 (8 bytes), int4, text (UTF-8),
// timestamptz (int64 microseconds since 2000-01-01 UTC), bytea (the hash's 32 bytes).
const POSITION = 0, TX_ID = 1, STREAM_ID = 2, VERSION = 3, TYPE = 4, RECORDED_AT = 5, DATA = 6, METADATA = 7, HASH = 8
const FIELDS = 9
const HASH_BYTES = 32
/** Each column's size in bytes, or -1 for text. */
const SIZES = [8, 8, -1, 4, -1, 8, -1, -1, HASH_BYTES]

function copyQuery(filter: ExportFilter): string {
  // COPY takes no parameters: the filter's values go in as quoted literals.
  const where: string[] = []
  if (filter.streamId) where.push(`e.stream_id = ${pg.escapeLiteral(filter.streamId)}`)
  if (filter.types?.length) where.push(`e.type = any(array[${filter.types.map((t) => pg.escapeLiteral(t)).join(', ')}]::text[])`)
  if (filter.from) where.push(`e.recorded_at >= ${pg.escapeLiteral(filter.from.toISOString())}::timestamptz`)
  if (filter.to) where.push(`e.recorded_at < ${pg.escapeLiteral(filter.to.toISOString())}::timestamptz`)
  return `copy (
    select e.position, e.tx_id, e.stream_id, e.stream_version, e.type, e.recorded_at, e.data::text, e.metadata::text, e.hash
    from events e
    ${where.length ? `where ${where.join(' and ')}` : ''}
    order by e.position
  ) to stdout (format binary)`
}

/** The whole rows of one chunk of COPY's binary format: field i of row r spans offsets[r * 2 * FIELDS + 2i, + 2i + 1). */
interface Batch {
  buf: Buffer
  /** The same bytes, for reading four at a time. */
  view: DataView
  count: number
  offsets: Int32Array
  /** The previous hash of each row at r * HASH_BYTES, when hasPrevious[r]. */
  previous: Buffer
  hasPrevious: Uint8Array
}

/** Splits COPY's binary format into rows; a row cut by a chunk's end is kept for the next chunk. */
class BinaryRows {
  // Chunks are copied into one input buffer, reused (a cut row moved to its start), and the batch's
  // arrays are reused too: a batch is done with before the next push. Fewer allocations outside V8's
  // heap mean fewer full collections, which such allocations trigger.
  private input = Buffer.allocUnsafe(1 << 20)
  private view = viewOf(this.input)
  private restStart = 0
  private restEnd = 0
  private headerRead = false
  private offsets = new Int32Array(2 * FIELDS * 1024)
  private previous = Buffer.allocUnsafe(HASH_BYTES * 1024)
  private hasPrevious = new Uint8Array(1024)

  /** The whole rows so far, in arrays that the next call reuses. */
  push(chunk: Buffer): Batch {
    const rest = this.restEnd - this.restStart
    if (rest + chunk.length > this.input.length) {
      const grown = Buffer.allocUnsafe(Math.max(rest + chunk.length, 2 * this.input.length))
      this.input.copy(grown, 0, this.restStart, this.restEnd)
      this.input = grown
      this.view = viewOf(grown)
    } else if (rest > 0) this.input.copyWithin(0, this.restStart, this.restEnd)
    chunk.copy(this.input, rest)
    const buf = this.input.subarray(0, rest + chunk.length)
    this.restStart = this.restEnd = 0
    let at = 0
    if (!this.headerRead) {
      // Signature (11 bytes), flags (4), header extension length (4) and the extension.
      if (buf.length < 19 || buf.length < 19 + buf.readUInt32BE(15)) return this.keep(buf, 0, 0)
      at = 19 + buf.readUInt32BE(15)
      this.headerRead = true
    }
    let count = 0
    rows: for (;;) {
      if (at + 2 > buf.length) break
      const fields = buf.readInt16BE(at)
      if (fields === -1) return this.batch(buf, count) // the trailer
      if (fields !== FIELDS) throw new Error(`export: a COPY row has ${fields} fields, not ${FIELDS}`)
      if ((count + 1) * 2 * FIELDS > this.offsets.length) {
        const grown = new Int32Array(this.offsets.length * 2)
        grown.set(this.offsets)
        this.offsets = grown
      }
      let p = at + 2
      const o = count * 2 * FIELDS
      for (let i = 0; i < FIELDS; i++) {
        if (p + 4 > buf.length) break rows
        const length = buf.readInt32BE(p)
        p += 4
        if (length < 0 || (SIZES[i]! >= 0 && length !== SIZES[i])) throw new Error(`export: column ${i} of a COPY row has ${length} bytes`)
        if (p + length > buf.length) break rows
        this.offsets[o + 2 * i] = p
        this.offsets[o + 2 * i + 1] = p + length
        p += length
      }
      at = p
      count++
    }
    return this.keep(buf, at, count)
  }

  private keep(buf: Buffer, at: number, count: number): Batch {
    // Moved to the input's start by the next push, once this batch is done with.
    this.restStart = at
    this.restEnd = buf.length
    return this.batch(buf, count)
  }

  private batch(buf: Buffer, count: number): Batch {
    if (count > this.hasPrevious.length) {
      this.previous = Buffer.allocUnsafe(HASH_BYTES * count)
      this.hasPrevious = new Uint8Array(count)
    } else this.hasPrevious.fill(0, 0, count)
    return { buf, view: this.view, count, offsets: this.offsets, previous: this.previous, hasPrevious: this.hasPrevious }
  }
}

function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength)
}

function copyHash(out: Buffer, p: number, src: Buffer, at: number): void {
  for (let i = 0; i < HASH_BYTES; i++) out[p + i] = src[at + i]!
}

/**
 * Each stream's last exported version and hash, for the previous hash of its next event: at most `limit`
 * streams (the first cached is dropped first), their hashes side by side in one buffer.
 */
/** The hashes of events given by stream id and version: for each one found, its index in the lists and its hash. */
type HashLookup = (streamIds: string[], versions: number[]) => Promise<{ i: number; hash: Buffer }[]>

class PreviousHashes {
  private readonly last = new Map<string, { version: number; slot: number }>()
  private readonly hashes: Buffer

  constructor(private readonly lookup: HashLookup, private readonly limit: number) {
    this.hashes = Buffer.allocUnsafe(limit * HASH_BYTES)
  }

  async fill(batch: Batch): Promise<void> {
    const { buf, offsets, previous, hasPrevious } = batch
    const hashes = this.hashes
    const missing: { row: number; streamId: string; version: number }[] = []
    for (let r = 0; r < batch.count; r++) {
      const o = r * 2 * FIELDS
      const key = buf.toString('utf8', offsets[o + 2 * STREAM_ID]!, offsets[o + 2 * STREAM_ID + 1]!)
      const version = int32(buf, offsets[o + 2 * VERSION]!)
      const hashAt = offsets[o + 2 * HASH]!
      const known = this.last.get(key)
      if (known && known.version === version - 1) {
        copyHash(previous, r * HASH_BYTES, hashes, known.slot * HASH_BYTES)
        hasPrevious[r] = 1
      } else if (version > 1) {
        missing.push({ row: r, streamId: key, version: version - 1 })
      }
      if (known) {
        if (version > known.version) {
          known.version = version
          copyHash(hashes, known.slot * HASH_BYTES, buf, hashAt)
        }
      } else {
        let slot = this.last.size
        if (slot >= this.limit) {
          const [oldest, entry] = this.last.entries().next().value!
          this.last.delete(oldest)
          slot = entry.slot
        }
        this.last.set(key, { version, slot })
        copyHash(hashes, slot * HASH_BYTES, buf, hashAt)
      }
    }
    if (missing.length === 0) return
    const found = await this.lookup(missing.map((m) => m.streamId), missing.map((m) => m.version))
    for (const { i, hash } of found) {
      const row = missing[i]!.row
      hash.copy(previous, row * HASH_BYTES)
      hasPrevious[row] = 1
    }
  }
}

/** A constant piece of a line: its bytes as big-endian 32-bit words, written four at a time, and the rest. */
interface Literal {
  words: Uint32Array
  tail: Uint8Array
  length: number
}

function ascii(s: string): Literal {
  const bytes = Buffer.from(s, 'latin1')
  const whole = bytes.length - (bytes.length % 4)
  const words = new Uint32Array(whole / 4)
  for (let i = 0; i < words.length; i++) words[i] = bytes.readUInt32BE(4 * i)
  return { words, tail: Uint8Array.from(bytes.subarray(whole)), length: bytes.length }
}

const L = {
  position: ascii('{"position":'),
  txId: ascii(',"txId":"'),
  streamId: ascii('","streamId":'),
  version: ascii(',"streamVersion":'),
  type: ascii(',"type":'),
  recordedAt: ascii(',"recordedAt":"'),
  data: ascii('","data":'),
  metadata: ascii(',"metadata":'),
  hash: ascii(',"hash":"'),
  previousHash: ascii('","previousHash":"'),
  bytes: ascii('","bytes":"['),
  // `, ` between the hashed array's items; `, "` and `"]` around its time, all inside a JSON string.
  comma: ascii(', '),
  timeOpen: ascii(', \\"'),
  end: ascii('\\"]"}\n'),
}
/**
 * The most a line adds to its fields' bytes: the literals above, position, transaction id and version
 * in digits (twice for the version), the quotes of stream id and type, the time twice, the hashes in hex.
 */
const LINE_OVERHEAD = 160 + 2 * 20 + 2 * 11 + 2 * 6 + 2 * 27 + 4 * HASH_BYTES

function put(out: Buffer, view: DataView, p: number, literal: Literal): number {
  const { words, tail } = literal
  for (let i = 0; i < words.length; i++, p += 4) view.setUint32(p, words[i]!)
  for (let i = 0; i < tail.length; i++) out[p++] = tail[i]!
  return p
}

/** A short run of bytes (a version's digits, a time): data and metadata go through copyEscape. */
function copy(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  for (let i = start; i < end; i++) out[p++] = src[i]!
  return p
}

/**
 * Copies JSON text to `raw` as it is and to `escaped` as the inside of a JSON string (`"` and `\`
 * escaped), in one pass, four bytes at a time where none of them needs escaping (most of them).
 * Returns where the escaped copy ends.
 */
function copyEscape(out: Buffer, outView: DataView, raw: number, escaped: number, src: Buffer, srcView: DataView, start: number, end: number): number {
  let i = start
  for (; i + 4 <= end; i += 4, raw += 4) {
    const word = srcView.getUint32(i)
    outView.setUint32(raw, word)
    // Whether a byte of the word is `"` (0x22) or `\` (0x5c): a zero byte in word ^ 0x22222222 or in word ^ 0x5c5c5c5c.
    const q = word ^ 0x22222222
    const b = word ^ 0x5c5c5c5c
    if ((((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) {
      for (let k = i; k < i + 4; k++) {
        const c = src[k]!
        if (c === 0x22 || c === 0x5c) out[escaped++] = 0x5c
        out[escaped++] = c
      }
    } else {
      outView.setUint32(escaped, word)
      escaped += 4
    }
  }
  for (; i < end; i++) {
    const c = src[i]!
    out[raw++] = c
    if (c === 0x22 || c === 0x5c) out[escaped++] = 0x5c
    out[escaped++] = c
  }
  return escaped
}

/** JSON text as the inside of a JSON string: `"` and `\` escaped. */
function escape(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    const b = src[i]!
    if (b === 0x22 || b === 0x5c) out[p++] = 0x5c
    out[p++] = b
  }
  return p
}

/** Text as PostgreSQL's to_json quotes it (escape_json): `"`, `\`, and control characters escaped. */
function quote(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  out[p++] = 0x22
  for (let i = start; i < end; i++) {
    const b = src[i]!
    if (b === 0x22 || b === 0x5c) {
      out[p++] = 0x5c
      out[p++] = b
    } else if (b < 0x20) {
      out[p++] = 0x5c
      const short = SHORT_ESCAPES[b]!
      if (short) out[p++] = short
      else {
        out[p++] = 0x75 // u00XX
        out[p++] = 0x30
        out[p++] = 0x30
        out[p++] = HEX[b >> 4]!
        out[p++] = HEX[b & 15]!
      }
    } else out[p++] = b
  }
  out[p++] = 0x22
  return p
}

const SHORT_ESCAPES = new Uint8Array(0x20)
for (const [code, letter] of [[0x08, 'b'], [0x0c, 'f'], [0x0a, 'n'], [0x0d, 'r'], [0x09, 't']] as const) SHORT_ESCAPES[code] = letter.charCodeAt(0)

/** A non-negative integer below 2^53 in decimal. */
function digits(out: Buffer, p: number, n: number): number {
  if (n < 0x80000000) {
    // Int32 arithmetic: every position and version, and transaction ids for a long time.
    let length = 1
    for (let x = n; x >= 10; x = (x / 10) | 0) length++
    for (let i = p + length - 1; i >= p; i--) {
      const next = (n / 10) | 0
      out[i] = 0x30 + n - next * 10
      n = next
    }
    return p + length
  }
  let length = 1
  for (let x = n; x >= 10; x = (x - (x % 10)) / 10) length++
  for (let i = p + length - 1; i >= p; i--) {
    const digit = n % 10
    out[i] = 0x30 + digit
    n = (n - digit) / 10
  }
  return p + length
}

/** A big-endian int32 (an int4 in binary). */
function int32(src: Buffer, at: number): number {
  return (src[at]! << 24) | (src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!
}

/** An int8 or xid8 in binary (big-endian) as decimal: positions and transaction ids are never negative. */
function int64(out: Buffer, p: number, src: Buffer, at: number): number {
  const high = int32(src, at)
  if (high >= 0 && high < 0x200000) return digits(out, p, high * 4_294_967_296 + (int32(src, at + 4) >>> 0))
  return p + out.write(src.readBigUInt64BE(at).toString(), p, 'latin1') // at or past 2^53
}

const HEX = Buffer.from('0123456789abcdef', 'latin1')

/** Each byte's two hex digits, as a big-endian 16-bit word. */
const HEX_PAIRS = new Uint16Array(256).map((_, b) => (HEX[b >> 4]! << 8) | HEX[b & 15]!)

function hex(view: DataView, p: number, src: Buffer, start: number): number {
  for (let i = start; i < start + HASH_BYTES; i++, p += 2) view.setUint16(p, HEX_PAIRS[src[i]!]!)
  return p
}

const EPOCH_2000_S = 946_684_800
const YEAR_1_S = -62_135_596_800 - EPOCH_2000_S
const YEAR_10000_S = 253_402_300_800 - EPOCH_2000_S

/** Writes timestamptz's binary form (int64 microseconds since 2000-01-01 UTC) as to_char's YYYY-MM-DDTHH:MI:SS.USZ. */
class Times {
  private second = NaN
  private readonly prefix = Buffer.alloc(19)

  write(out: Buffer, p: number, src: Buffer, at: number): number {
    const micros = int32(src, at) * 4_294_967_296 + (int32(src, at + 4) >>> 0)
    const second = Math.floor(micros / 1e6)
    if (second !== this.second) {
      if (!(second >= YEAR_1_S && second < YEAR_10000_S)) throw new Error('export: a recorded time is outside years 1-9999')
      this.prefix.write(new Date((second + EPOCH_2000_S) * 1000).toISOString().slice(0, 19), 'latin1')
      this.second = second
    }
    for (let i = 0; i < this.prefix.length; i++) out[p++] = this.prefix[i]!
    out[p++] = 0x2e // .
    let fraction = micros - second * 1e6
    for (let i = p + 5; i >= p; i--) {
      const next = (fraction / 10) | 0
      out[i] = 0x30 + fraction - next * 10
      fraction = next
    }
    out[p + 6] = 0x5a // Z
    return p + 7
  }
}

/**
 * Room to write output into: `out` from `start` up to `end`, with a view of the same bytes. The caller
 * writes from `start` and then tells its output where it stopped.
 */
export interface Space {
  out: Buffer
  view: DataView
  start: number
  end: number
}

/** Where the export's output goes: room for at least `bytes` (waiting for it if need be), then what was written. */
export interface LineOutput {
  room(bytes: number): Promise<Space>
  commit(end: number): void
}

/** The most a row's line takes: data and metadata three times (as they are, then escaped), stream id and type eighteen. */
function lineBound(batch: Batch, r: number): number {
  const o = r * 2 * FIELDS
  const f = batch.offsets
  const quoted = f[o + 2 * STREAM_ID + 1]! - f[o + 2 * STREAM_ID]! + f[o + 2 * TYPE + 1]! - f[o + 2 * TYPE]!
  return 3 * (f[o + 2 * HASH + 1]! - f[o]!) + 15 * quoted + LINE_OVERHEAD
}

/**
 * Writes the lines of rows `from`, `from + 1` ... into `space` while the next one surely fits (at least
 * one: the space was asked for with room for it); returns the row it stopped before and where the
 * lines end.
 */
function jsonl(batch: Batch, from: number, times: Times, space: Space): { row: number; end: number } {
  const { buf: src, view: srcView, offsets: f, previous } = batch
  const { out, view: outView, end: limit } = space
  let p = space.start
  let r = from
  for (; r < batch.count; r++) {
    if (r > from && p + lineBound(batch, r) > limit) break
    const o = r * 2 * FIELDS
    p = int64(out, put(out, outView, p, L.position), src, f[o]!)
    p = int64(out, put(out, outView, p, L.txId), src, f[o + 2]!)
    const streamId = put(out, outView, p, L.streamId)
    p = quote(out, streamId, src, f[o + 4]!, f[o + 5]!)
    const streamIdEnd = p
    const version = put(out, outView, p, L.version)
    p = digits(out, version, int32(src, f[o + 6]!))
    const versionEnd = p
    const type = put(out, outView, p, L.type)
    p = quote(out, type, src, f[o + 8]!, f[o + 9]!)
    const typeEnd = p
    const time = put(out, outView, p, L.recordedAt)
    p = times.write(out, time, src, f[o + 10]!)
    const timeEnd = p
    // Data and metadata go out twice: as they are, and escaped inside the hashed bytes. Each is read once
    // and written to both places; the fields between the two places are written first (all their
    // lengths are known), so both places are known when the data is copied.
    const dataStart = f[o + 12]!, dataEnd = f[o + 13]!, metadataStart = f[o + 14]!, metadataEnd = f[o + 15]!
    const data = put(out, outView, p, L.data)
    const metadata = put(out, outView, data + dataEnd - dataStart, L.metadata)
    p = hex(outView, put(out, outView, metadata + metadataEnd - metadataStart, L.hash), src, f[o + 16]!)
    p = put(out, outView, p, L.previousHash)
    if (batch.hasPrevious[r]) p = hex(outView, p, previous, r * HASH_BYTES)
    // The hashed bytes, [stream id, version, type, data, metadata, "time"], as one JSON string.
    p = escape(out, put(out, outView, p, L.bytes), out, streamId, streamIdEnd)
    p = copy(out, put(out, outView, p, L.comma), out, version, versionEnd)
    p = escape(out, put(out, outView, p, L.comma), out, type, typeEnd)
    p = copyEscape(out, outView, data, put(out, outView, p, L.comma), src, srcView, dataStart, dataEnd)
    p = copyEscape(out, outView, metadata, put(out, outView, p, L.comma), src, srcView, metadataStart, metadataEnd)
    p = copy(out, put(out, outView, p, L.timeOpen), out, time, timeEnd)
    p = put(out, outView, p, L.end)
  }
  return { row: r, end: p }
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}

function csv(batch: Batch, times: Times): string {
  const { buf, offsets } = batch
  const scratch = Buffer.alloc(27)
  let text = ''
  for (let r = 0; r < batch.count; r++) {
    const o = r * 2 * FIELDS
    const t = (i: number) => buf.toString('utf8', offsets[o + 2 * i]!, offsets[o + 2 * i + 1]!)
    const hashAt = offsets[o + 2 * HASH]!
    const streamId = t(STREAM_ID), type = t(TYPE), version = String(buf.readInt32BE(offsets[o + 2 * VERSION]!)), data = t(DATA), metadata = t(METADATA)
    const recordedAt = scratch.toString('latin1', 0, times.write(scratch, 0, buf, offsets[o + 2 * RECORDED_AT]!))
    const previousHash = batch.hasPrevious[r] ? batch.previous.toString('hex', r * HASH_BYTES, (r + 1) * HASH_BYTES) : ''
    // JSON.stringify quotes text as to_json does (the same escapes, lowercase \u00XX).
    const bytes = `[${JSON.stringify(streamId)}, ${version}, ${JSON.stringify(type)}, ${data}, ${metadata}, "${recordedAt}"]`
    text += [buf.readBigInt64BE(offsets[o + 2 * POSITION]!).toString(), buf.readBigUInt64BE(offsets[o + 2 * TX_ID]!).toString(), streamId,
      version, type, recordedAt, data, metadata, buf.toString('hex', hashAt, hashAt + HASH_BYTES), previousHash, bytes].map(csvField).join(',') + '\n'
  }
  return text
}

const PREVIOUS_HASHES = `
  select m.i, e.hash
  from unnest($1::text[], $2::int[], $3::int[]) as m(stream_id, version, i)
  join events e on e.stream_id = m.stream_id and e.stream_version = m.version`

/** Writes text (CSV) into the output. */
async function writeText(output: LineOutput, text: string): Promise<void> {
  const bytes = Buffer.byteLength(text)
  const space = await output.room(bytes)
  output.commit(space.start + space.out.write(text, space.start, bytes, 'utf8'))
}

/**
 * Writes the export into `output`; run by the worker. Aborting drops its connections, which ends the
 * statement on the server and this function.
 */
export async function writeLines(settings: ConnectionSettings, filter: ExportFilter, as: ExportFormat, options: ExportOptions,
  signal: AbortSignal, output: LineOutput): Promise<void> {
  const clients: pg.Client[] = []
  // Dropping the socket (not a polite end, which would wait behind the unread rows of a COPY).
  const drop = (c: pg.Client) => {
    c.connection.stream.destroy()
    c.end().catch(() => {})
  }
  const open = async () => {
    const c = await openConnection(settings)
    clients.push(c)
    if (signal.aborted) drop(c)
    return c
  }
  const onAbort = () => clients.forEach(drop)
  signal.addEventListener('abort', onAbort, { once: true })
  let finished = false
  try {
    const client = await open()
    const copy = client.query(copyTo(copyQuery(filter)))
    let lookups: Promise<pg.Client> | null = null
    const previous = new PreviousHashes(async (streamIds, versions) => {
      const c = await (lookups ??= open())
      return (await c.query<{ i: number; hash: Buffer }>(PREVIOUS_HASHES, [streamIds, versions, streamIds.map((_, i) => i)])).rows
    }, options.cachedStreams ?? 100_000)
    const rows = new BinaryRows()
    const times = new Times()
    if (as === 'csv') await writeText(output, CSV_HEADER)
    for await (const chunk of copy as AsyncIterable<Buffer>) {
      const batch = rows.push(chunk)
      if (batch.count === 0) continue
      await previous.fill(batch)
      if (as === 'csv') await writeText(output, csv(batch, times))
      else {
        for (let r = 0; r < batch.count;) {
          const written = jsonl(batch, r, times, await output.room(lineBound(batch, r)))
          output.commit(written.end)
          r = written.row
        }
      }
    }
    finished = true
  } finally {
    signal.removeEventListener('abort', onAbort)
    if (finished) await Promise.all(clients.map((c) => c.end()))
    else clients.forEach(drop)
  }
}

/** What an export asks of the worker: its ring is `slabs` slabs of SLAB_BYTES in `shared`. */
export interface ExportRequest {
  settings: ConnectionSettings
  filter: ExportFilter
  as: ExportFormat
  options: ExportOptions
  shared: SharedArrayBuffer
  slabs: number
}

/**
 * Messages to the worker, each about the export `id`: start it, take back slab `free` (or, when -1, the
 * word that a buffer of its own was written), or stop it.
 */
export type ToWorker = { id: number } & ({ start: ExportRequest } | { free: number } | { cancel: true })

/**
 * Messages from the worker about the export `id`: output in the ring (`last` when the worker is done with
 * that slab), output too long for a slab in a buffer of its own (moved), the end, or why it failed.
 */
export type FromWorker = { id: number } & (
  | { slab: number; start: number; end: number; last: boolean }
  | { buffer: ArrayBuffer; start: number; end: number }
  | { done: true }
  | { error: { message: string; code?: string } }
)

// The worker's entry: a JavaScript file that loads the TypeScript sources through tsx, as bin/tessera.js does.
const WORKER = new URL('./export-thread.js', import.meta.url)

interface OpenExport {
  receive(message: FromWorker): void
  fail(error: Error): void
}

/**
 * The export thread, started by the first export and kept for the next ones (starting one costs a few
 * hundred milliseconds); it holds the process open only while an export runs. If it dies, its exports
 * fail and the next export starts another.
 */
let thread: { worker: Worker; exports: Map<number, OpenExport> } | null = null
let lastId = 0

function exportThread(): NonNullable<typeof thread> {
  if (thread) return thread
  const worker = new Worker(WORKER)
  const exports = new Map<number, OpenExport>()
  const current = { worker, exports }
  worker.on('message', (m: FromWorker) => exports.get(m.id)?.receive(m))
  const fail = (error: Error) => {
    if (thread === current) thread = null
    for (const e of [...exports.values()]) e.fail(error)
  }
  worker.on('error', fail)
  worker.on('exit', (code) => fail(new Error(`export: the export thread stopped (exit code ${code})`)))
  worker.unref()
  thread = current
  return current
}

/** The error an export ends with when its destination closes or fails first (a download given up, say). */
export class ExportDestinationClosed extends Error {
  override name = 'ExportDestinationClosed'
  constructor(cause?: Error) {
    super(cause ? `export: the destination failed: ${cause.message}` : 'export: the destination closed before the export ended', { cause })
  }
}

/**
 * Writes the export into `destination`, produced on the export thread, and ends the destination after
 * the last line; resolves once the destination has finished. It reads from the database only as fast as
 * the destination takes the output. If the destination closes or fails first, the export stops (its
 * statement too) and the promise rejects with ExportDestinationClosed; if the export fails, the promise
 * rejects with the reason and the destination is left as it is (ended by neither), for the caller to
 * destroy or to answer with an error if it has written nothing yet.
 *
 * The chunks written are views of memory shared with the export thread, which writes into it again once
 * the destination has called back for them: a destination must be done with a chunk when it calls back
 * (sockets, files, HTTP responses and the operating system's pipes are), not keep it for later. A
 * PassThrough or other Transform calls back while its readable side still holds the chunk: copy there.
 */
export function exportEventsTo(db: Db, filter: ExportFilter, as: ExportFormat, destination: Writable, options: ExportOptions = {}): Promise<void> {
  if (options.cachedStreams !== undefined && !(Number.isInteger(options.cachedStreams) && options.cachedStreams >= 1)) {
    throw new Error('exportEventsTo: option cachedStreams must be a whole number of at least 1')
  }
  const shared = new SharedArrayBuffer(SLABS * SLAB_BYTES)
  const request: ExportRequest = { settings: connectionSettings(db), filter, as, options, shared, slabs: SLABS }
  const { worker, exports } = exportThread()
  const id = ++lastId
  const post = (message: ToWorker) => worker.postMessage(message)
  // First, so that a request the worker cannot be sent leaves nothing behind.
  post({ id, start: request })
  if (exports.size === 0) worker.ref()
  return new Promise<void>((resolve, reject) => {
    // 'running' while the worker writes, 'finishing' while the destination flushes the end, 'over' once settled.
    let state: 'running' | 'finishing' | 'over' = 'running'
    /** The worker has nothing more to say about this export (and the process may exit without it). */
    const detach = () => {
      exports.delete(id)
      if (exports.size === 0) worker.unref()
    }
    exportsRunning.inc()
    const settle = (error?: Error) => {
      if (state === 'over') return
      if (state === 'running') detach()
      state = 'over'
      exportsRunning.dec()
      destination.off('close', onClose)
      destination.off('error', onError)
      if (!error) return resolve()
      // Writes still out may fail too, each with an error event: the rejection says it once.
      destination.on('error', () => {})
      reject(error)
    }
    // The destination gone first: the worker stops, and so does its statement.
    const abandon = (error: Error) => {
      if (state !== 'running') return
      post({ id, cancel: true })
      settle(error)
    }
    const onClose = () => abandon(new ExportDestinationClosed())
    const onError = (error: Error) => abandon(new ExportDestinationClosed(error))
    destination.on('close', onClose)
    destination.on('error', onError)
    // Writes not yet called back, per slab; a slab goes back to the worker once the worker is done with it
    // and the destination with its last part.
    const pending = new Int32Array(SLABS)
    const done = new Uint8Array(SLABS)
    const giveBack = (slab: number) => {
      if (done[slab] && pending[slab] === 0 && state === 'running') {
        done[slab] = 0
        post({ id, free: slab })
      }
    }
    const write = (chunk: Buffer, slab: number) => {
      if (slab >= 0) pending[slab]!++
      destination.write(chunk, (error) => {
        if (error) return abandon(new ExportDestinationClosed(error))
        exportBytes.inc(chunk.length)
        if (slab < 0) {
          if (state === 'running') post({ id, free: -1 })
          return
        }
        pending[slab]!--
        giveBack(slab)
      })
    }
    exports.set(id, {
      receive(m) {
        if (state !== 'running') return
        if ('slab' in m) {
          if (m.end > m.start) write(Buffer.from(shared, m.start, m.end - m.start), m.slab)
          if (m.last) {
            done[m.slab] = 1
            giveBack(m.slab)
          }
        } else if ('buffer' in m) write(Buffer.from(m.buffer, m.start, m.end - m.start), -1)
        else if ('done' in m) {
          // No more output: the destination may close now without that being a failure, and the thread
          // may stop without harm. Only the writable side counts (a socket's readable side may never end).
          state = 'finishing'
          detach()
          destination.off('close', onClose)
          destination.end()
          finished(destination, { readable: false }).then(() => settle(), (error: Error) => settle(new ExportDestinationClosed(error)))
        } else settle(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}))
      },
      fail: settle,
    })
  })
}
