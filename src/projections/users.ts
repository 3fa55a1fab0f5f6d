// Inline read model `users`: who can sign in, by user principal name (unique, case-insensitive).
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import { USER_EVENT_TYPES, type UserEvent } from '../domain/user/events.js'
import { evolveUser, initialUserState, type UserState } from '../domain/user/state.js'
import { byStream, continuing } from './fold.js'
import type { Projection } from './types.js'

const idOf = (streamId: string) => streamId.slice('user-'.length)

export const usersProjection: Projection = {
  name: 'users',
  kind: 'inline',
  tables: ['users'],
  handles: USER_EVENT_TYPES,
  async apply(db: Kysely<any>, events) {
    const streams = byStream(events)
    const load = continuing(streams).map(idOf)
    const stored = new Map<string, UserState>()
    if (load.length > 0) {
      for (const r of await db.selectFrom('users').selectAll().where('id', 'in', load).execute()) {
        stored.set(r.id, { userId: r.id, exists: true, upn: r.upn, displayName: r.display_name, roles: r.roles, createdAt: r.created_at, version: r.version })
      }
    }
    const rows = [...streams].map(([streamId, list]) => {
      let state = stored.get(idOf(streamId)) ?? initialUserState(idOf(streamId))
      for (const e of list) state = evolveUser(state, { type: e.type, data: e.data } as UserEvent, e.recordedAt)
      return { id: state.userId, upn: state.upn, display_name: state.displayName, roles: JSON.stringify(state.roles), created_at: state.createdAt, version: state.version }
    })
    await db.insertInto('users').values(rows)
      .onConflict((oc) => oc.column('id').doUpdateSet({
        upn: sql.ref('excluded.upn'), display_name: sql.ref('excluded.display_name'), roles: sql.ref('excluded.roles'), version: sql.ref('excluded.version'),
      }))
      .execute()
  },
}
