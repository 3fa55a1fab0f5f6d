// Shared by inline projections whose rows hold an aggregate's state: group a batch by stream, start
// from the stored row (or the initial state for a new stream), fold the events with the domain's evolve.
import type { RecordedEvent } from '../event-store/types.js'

export function byStream(events: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const streams = new Map<string, RecordedEvent[]>()
  for (const e of events) {
    const list = streams.get(e.streamId)
    if (list) list.push(e)
    else streams.set(e.streamId, [e])
  }
  return streams
}

/** Streams whose stored state must be read first: their first event here is not their first ever. */
export function continuing(streams: Map<string, RecordedEvent[]>): string[] {
  return [...streams].filter(([, events]) => events[0]!.streamVersion > 1).map(([id]) => id)
}
