// Inline read model `clients`: the relying applications the OpenID provider knows.
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import { evolveClient, initialClientState, type ClientEvent } from '../domain/client/client.js'
import { byStream } from './fold.js'
import type { Projection } from './types.js'

export const clientsProjection: Projection = {
  name: 'clients',
  kind: 'inline',
  tables: ['clients'],
  handles: ['ClientRegistered'],
  async apply(db: Kysely<any>, events) {
    const rows = [...byStream(events)].map(([streamId, list]) => {
      const first = list[0]!
      let state = initialClientState(streamId.slice('client-'.length))
      for (const e of list) state = evolveClient(state, { type: e.type, data: e.data } as ClientEvent)
      return { client_id: state.clientId, name: state.name, redirect_uris: JSON.stringify(state.redirectUris), public: state.public,
        created_at: first.recordedAt, version: list[list.length - 1]!.streamVersion }
    })
    await db.insertInto('clients').values(rows)
      .onConflict((oc) => oc.column('client_id').doUpdateSet({
        name: sql.ref('excluded.name'), redirect_uris: sql.ref('excluded.redirect_uris'), public: sql.ref('excluded.public'),
        version: sql.ref('excluded.version'),
      }))
      .execute()
  },
}
