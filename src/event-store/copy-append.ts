// Appends the events of new streams with COPY (an inventory import: thousands of new streams a batch),
// chaining their hashes here instead of in the row trigger of migration 0001. The bytes hashed are the
// trigger's exactly (tessera_event_bytes): [stream id, version, type, data, metadata, recorded at] with
// data and metadata in jsonb's text form (canonical-json.ts) and the transaction's now(), asked of the
// server, so the auditors' verification recomputes the same chain (tested against the trigger's).
// - Every stream must be new: its version 1 meets the unique (stream_id, stream_version) key otherwise.
// - The trigger stands aside only for this COPY: `tessera.hashed_by_append` is on for that statement's
//   duration and off again before the caller's next one, so any other insert still gets its hash there.
// - Runs in the caller's transaction, on its connection; the caller commits and then calls `committed()`.
import { hash } from 'node:crypto'
import type pg from 'pg'
import { copyIn, copyText } from '../db/copy.js'
import { canonicalJson } from './canonical-json.js'
import { InvalidEvent } from './errors.js'
import type { EventMetadata, NewEvent } from './types.js'
import { checkEvent, checkMetadata, checkStreamId, MAX_EVENTS_PER_APPEND } from './validate.js'

export interface NewStream {
  streamId: string
  events: readonly NewEvent[]
}

const COPY_EVENTS = 'copy events (stream_id, stream_version, type, data, metadata, hash) from stdin'

/**
 * Writes every event of these new streams, versions 1..n, with one metadata. Returns the recorded time
 * of them all (the transaction's now(), as the hashed bytes spell it), for the caller's read model rows.
 */
export async function copyNewStreams(client: pg.ClientBase, streams: readonly NewStream[], metadata: EventMetadata): Promise<string> {
  checkMetadata(metadata)
  const metadataText = canonicalJson(metadata)!
  const metadataColumn = copyText(metadataText)
  // Checked before anything is sent: a bad event fails the call with nothing written.
  const texts = streams.map(({ streamId, events }) => {
    checkStreamId(streamId)
    if (events.length === 0 || events.length > MAX_EVENTS_PER_APPEND) {
      throw new InvalidEvent(`stream ${streamId}: an append takes 1 to ${MAX_EVENTS_PER_APPEND} events, not ${events.length}`)
    }
    return events.map((e) => checkEvent(e, metadataText, canonicalJson))
  })
  const { rows } = await client.query<{ at: string }>(
    `select set_config('tessera.hashed_by_append', 'on', true), to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`)
  const at = rows[0]!.at
  const tail = `, ${metadataText}, "${at}"]`
  let lines = ''
  streams.forEach(({ streamId, events }, s) => {
    const id = JSON.stringify(streamId)
    const idColumn = copyText(streamId)
    let previous = ''
    events.forEach((event, i) => {
      const data = texts[s]![i]!
      const bytes = `[${id}, ${i + 1}, ${JSON.stringify(event.type)}, ${data}${tail}`
      // In hex: one-shot hashing to hex is about half the cost of a hash object or a Buffer result.
      previous = hash('sha256', previous === '' ? bytes : Buffer.concat([Buffer.from(previous, 'hex'), Buffer.from(bytes)]), 'hex')
      lines += `${idColumn}\t${i + 1}\t${event.type}\t${copyText(data)}\t${metadataColumn}\t\\\\x${previous}\n`
    })
  })
  await copyIn(client, COPY_EVENTS, lines)
  await client.query(`select set_config('tessera.hashed_by_append', 'off', true)`)
  return at
}
