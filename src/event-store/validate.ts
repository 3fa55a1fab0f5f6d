// Checks on what a writer hands the store, before anything is sent to the database.
import type { EventMetadata, ExpectedVersion, NewEvent } from './types.js'
import { EventTooLarge, InvalidEvent, InvalidMetadata, InvalidStreamId } from './errors.js'

/** data + metadata of one event, as JSON. Large enough for any lifecycle event, small enough to keep rows cheap. */
export const MAX_EVENT_BYTES = 64 * 1024
export const MAX_EVENTS_PER_APPEND = 10_000

const STREAM_ID = /^[\x21-\x7e]{1,200}$/
const EVENT_TYPE = /^[A-Z][A-Za-z0-9]{0,99}$/
const ACTOR_TYPES = new Set(['user', 'admin', 'auditor', 'system', 'client'])

export function checkStreamId(streamId: unknown): asserts streamId is string {
  if (typeof streamId !== 'string' || !STREAM_ID.test(streamId)) throw new InvalidStreamId(streamId)
}

export function checkExpectedVersion(expected: unknown): asserts expected is ExpectedVersion {
  if (expected === 'any' || expected === 'no-stream') return
  if (typeof expected === 'number' && Number.isInteger(expected) && expected >= 0) return
  throw new InvalidEvent(`expected version must be a whole number >= 0, 'no-stream' or 'any'`)
}

function text(field: string, value: unknown, max: number, nullable: boolean): void {
  if (value === null && nullable) return
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new InvalidMetadata(field, `must be a string of 1 to ${max} characters${nullable ? ' or null' : ''}`)
  }
}

export function checkMetadata(metadata: unknown): asserts metadata is EventMetadata {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new InvalidMetadata('', 'must be an object')
  }
  const m = metadata as Record<string, unknown>
  text('correlationId', m.correlationId, 100, false)
  text('causationId', m.causationId, 100, true)
  const actor = m.actor as Record<string, unknown> | null | undefined
  if (typeof actor !== 'object' || actor === null) throw new InvalidMetadata('actor', 'must be { type, id }')
  if (!ACTOR_TYPES.has(actor.type as string)) {
    throw new InvalidMetadata('actor.type', `must be one of ${[...ACTOR_TYPES].join(', ')}`)
  }
  text('actor.id', actor.id, 320, false)
  text('requestId', m.requestId, 100, true)
  text('sourceIp', m.sourceIp, 64, true)
  text('userAgent', m.userAgent, 512, true)
  text('relyingApplication', m.relyingApplication, 200, true)
  const allowed = new Set(['correlationId', 'causationId', 'actor', 'requestId', 'sourceIp', 'userAgent', 'relyingApplication'])
  for (const key of Object.keys(m)) {
    if (!allowed.has(key)) throw new InvalidMetadata(key, 'is not a known metadata field')
  }
}

/** Returns each event's data as JSON text, the form it is sent in. */
export function checkEvents(events: readonly NewEvent[], metadataJson: string): string[] {
  if (!Array.isArray(events) || events.length === 0) throw new InvalidEvent('an append needs at least one event')
  if (events.length > MAX_EVENTS_PER_APPEND) {
    throw new InvalidEvent(`an append takes at most ${MAX_EVENTS_PER_APPEND} events, not ${events.length}`)
  }
  return events.map((event) => {
    if (typeof event?.type !== 'string' || !EVENT_TYPE.test(event.type)) {
      throw new InvalidEvent(`event type must be PascalCase letters and digits, like TokenActivated`)
    }
    const data = event.data
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new InvalidEvent(`event ${event.type}: data must be an object`)
    }
    let json: string
    try {
      json = JSON.stringify(data)
    } catch {
      throw new InvalidEvent(`event ${event.type}: data is not JSON`)
    }
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most events need no byte count.
    if ((json.length + metadataJson.length) * 3 > MAX_EVENT_BYTES) {
      const bytes = Buffer.byteLength(json) + Buffer.byteLength(metadataJson)
      if (bytes > MAX_EVENT_BYTES) throw new EventTooLarge(event.type, bytes, MAX_EVENT_BYTES)
    }
    // PostgreSQL's jsonb refuses NUL characters; say so here rather than with a driver error.
    if (json.includes('\\u0000')) throw new InvalidEvent(`event ${event.type}: data contains a NUL character`)
    return json
  })
}
