// The event store contract: what any implementation (PostgreSQL now, KurrentDB later) must provide.
// It knows streams, versions and positions; it knows no token and no HTTP.

export type ActorType = 'user' | 'admin' | 'auditor' | 'system' | 'client'

export interface Actor {
  type: ActorType
  id: string
}

/** Who caused an event and through which request; carried by every event. No secret belongs here. */
export interface EventMetadata {
  correlationId: string
  causationId: string | null
  actor: Actor
  requestId: string | null
  sourceIp: string | null
  userAgent: string | null
  relyingApplication: string | null
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export interface NewEvent<Type extends string = string, Data = Record<string, unknown>> {
  type: Type
  data: Data
}

/**
 * Where a reader of all events stands. The global order is (transaction id, position): events are
 * delivered only once every transaction that could still add an earlier one has ended, so a reader
 * never skips an event that commits late with a lower position.
 */
export interface GlobalPosition {
  txId: string
  position: number
}

export interface RecordedEvent<Type extends string = string, Data = Record<string, unknown>> {
  position: number
  txId: string
  streamId: string
  streamVersion: number
  type: Type
  data: Data
  metadata: EventMetadata
  recordedAt: Date
  /**
   * sha256 over the previous event's hash of the stream and this event's canonical bytes. Present on
   * appends and stream reads; readAll includes it when asked ({ hash: true }).
   */
  hash?: Buffer
}

/** A number is the version the stream must be at (0 = empty); 'no-stream' the same as 0. */
export type ExpectedVersion = number | 'no-stream' | 'any'

export interface AppendResult {
  /** The stream's version after the append. */
  nextVersion: number
  events: RecordedEvent[]
}

export type Direction = 'forward' | 'backward'

export interface ReadStreamOptions {
  /** First version to read (inclusive); default: the start, or the end when reading backward. */
  from?: number
  direction?: Direction
  limit?: number
}

export interface ReadAllResult {
  events: RecordedEvent[]
  /** Where the next read continues; unchanged when nothing was read. */
  next: GlobalPosition
}

export const START: GlobalPosition = Object.freeze({ txId: '0', position: 0 })

export function compareGlobal(a: GlobalPosition, b: GlobalPosition): number {
  const ta = BigInt(a.txId)
  const tb = BigInt(b.txId)
  if (ta !== tb) return ta < tb ? -1 : 1
  return a.position - b.position
}
