// Inline read model `clients`: the relying applications the OpenID provider knows, folded from each
// client's stream (from its stored row when the batch does not start the stream).
import { CLIENT_EVENT_TYPES, evolveClient, initialClientState, type ClientEvent, type ClientState } from '../domain/client/client.js'
import { stateProjection } from './fold.js'

interface ClientRow extends Record<string, unknown> {
  client_id: string
  name: string
  redirect_uris: string[] | string
  public: boolean
  deleted: boolean
  created_at: Date
  version: number
}

type Folded = ClientState & { createdAt: Date | null }

export const clientsProjection = stateProjection<Folded, ClientEvent, ClientRow>({
  name: 'clients',
  table: 'clients',
  key: 'client_id',
  prefix: 'client-',
  handles: CLIENT_EVENT_TYPES,
  initial: (clientId) => ({ ...initialClientState(clientId), createdAt: null }),
  evolve: (state, event, at) => ({ ...evolveClient(state, event), createdAt: state.createdAt ?? at }),
  fromRow: (r) => ({ clientId: r.client_id, exists: !r.deleted, name: r.name, redirectUris: r.redirect_uris as string[], public: r.public, version: r.version, createdAt: r.created_at }),
  toRow: (s) => ({ client_id: s.clientId, name: s.name, redirect_uris: JSON.stringify(s.redirectUris), public: s.public, deleted: !s.exists, created_at: s.createdAt!, version: s.version }),
})
