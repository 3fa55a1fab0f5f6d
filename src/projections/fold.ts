// Inline projections whose rows hold an aggregate's state: group a batch by stream, start from the
// stored row (or the initial state for a new stream), fold the events with the domain's evolve, and
// upsert the rows in one statement.
import { sql, type Kysely } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'
import type { Projection } from './types.js'

/** PostgreSQL's limit on a statement's parameters, with room to spare. */
const MAX_PARAMETERS = 60_000

export function byStream(events: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const streams = new Map<string, RecordedEvent[]>()
  for (const e of events) {
    const list = streams.get(e.streamId)
    if (list) list.push(e)
    else streams.set(e.streamId, [e])
  }
  return streams
}

export interface StateProjection<State, Event, Row extends Record<string, unknown>> {
  name: string
  table: string
  /** The row's key column, which holds the stream id without its category prefix. */
  key: keyof Row & string
  /** Stream ids look like `<prefix><key>`. */
  prefix: string
  handles: readonly string[]
  initial(key: string): State
  evolve(state: State, event: Event, at: Date): State
  fromRow(row: Row): State
  toRow(state: State): Row
}

export function stateProjection<State, Event, Row extends Record<string, unknown>>(
  spec: StateProjection<State, Event, Row>,
): Projection {
  const keyOf = (streamId: string) => streamId.slice(spec.prefix.length)
  return {
    name: spec.name,
    kind: 'inline',
    tables: [spec.table],
    handles: spec.handles,
    async apply(db: Kysely<any>, events) {
      const streams = byStream(events)
      // Streams whose first event here is not their first ever: their stored state comes first.
      const load = [...streams].filter(([, list]) => list[0]!.streamVersion > 1).map(([id]) => keyOf(id))
      const stored = new Map<string, State>()
      if (load.length > 0) {
        const rows = await db.selectFrom(spec.table).selectAll().where(sql.ref(spec.key), 'in', load).execute() as Row[]
        for (const row of rows) stored.set(String(row[spec.key]), spec.fromRow(row))
      }
      const rows = [...streams].map(([streamId, list]) => {
        let state = stored.get(keyOf(streamId)) ?? spec.initial(keyOf(streamId))
        for (const e of list) state = spec.evolve(state, { type: e.type, data: e.data } as Event, e.recordedAt)
        return spec.toRow(state)
      })
      const columns = Object.keys(rows[0]!).filter((c) => c !== spec.key)
      // A statement carries at most 65,535 parameters (the protocol counts them in 16 bits): a rebuild's page
      // can touch thousands of streams, so the rows go in slices that stay under it.
      const perStatement = Math.floor(MAX_PARAMETERS / (columns.length + 1))
      for (let i = 0; i < rows.length; i += perStatement) {
        await db.insertInto(spec.table).values(rows.slice(i, i + perStatement))
          .onConflict((oc) => oc.column(spec.key).doUpdateSet(Object.fromEntries(columns.map((c) => [c, sql.ref(`excluded.${c}`)]))))
          .execute()
      }
    },
  }
}
