// A projection: the events it handles and how a batch of them changes its tables.
// Inline projections run in the append's transaction; catch-up projections run behind, checkpointed.
import type { Kysely } from 'kysely'
import type { RecordedEvent } from '../event-store/types.js'

export interface Projection {
  name: string
  kind: 'inline' | 'catch-up'
  /** The read-model tables it owns; a rebuild recreates exactly these. */
  tables: readonly string[]
  /** Event types it handles; '*' for all. */
  handles: readonly string[] | '*'
  /**
   * Applies events (already filtered to `handles`, in the global order) to its tables through `db`,
   * which may be scoped to a rebuild schema: name tables without a schema.
   */
  apply(db: Kysely<any>, events: readonly RecordedEvent[]): Promise<void>
}

export function relevant(projection: Projection, events: readonly RecordedEvent[]): RecordedEvent[] {
  const handles = projection.handles
  if (handles === '*') return [...events]
  return events.filter((e) => handles.includes(e.type))
}
