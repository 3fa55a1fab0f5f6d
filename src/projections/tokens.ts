// Inline read model `tokens`: each token's state as the domain folds it, with its stream version.
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { TokenEvent } from '../domain/token/events.js'
import { TOKEN_EVENT_TYPES } from '../domain/token/events.js'
import { evolve, initialState, type TokenState } from '../domain/token/state.js'
import { rowFromState, stateFromRow, type TokensTable } from '../read-models/tokens.js'
import { byStream, continuing } from './fold.js'
import type { Projection } from './types.js'

const serialOf = (streamId: string) => streamId.slice('token-'.length)

export const tokensProjection: Projection = {
  name: 'tokens',
  kind: 'inline',
  tables: ['tokens'],
  handles: TOKEN_EVENT_TYPES,
  async apply(db: Kysely<any>, events) {
    const streams = byStream(events)
    const load = continuing(streams).map(serialOf)
    const stored = new Map<string, TokenState>()
    if (load.length > 0) {
      const rows = await db.selectFrom('tokens').selectAll().where('serial', 'in', load).execute() as TokensTable[]
      for (const row of rows) stored.set(row.serial, stateFromRow(row))
    }
    const rows = [...streams].map(([streamId, list]) => {
      let state = stored.get(serialOf(streamId)) ?? initialState(serialOf(streamId))
      for (const e of list) state = evolve(state, { type: e.type, data: e.data } as TokenEvent, e.recordedAt)
      return rowFromState(state)
    })
    const columns = Object.keys(rows[0]!).filter((c) => c !== 'serial')
    await db.insertInto('tokens').values(rows)
      .onConflict((oc) => oc.column('serial').doUpdateSet(Object.fromEntries(columns.map((c) => [c, sql.ref(`excluded.${c}`)]))))
      .execute()
  },
}
