// The clients read model: relying applications registered with `tessera clients add`.
import { initialClientState, type ClientState } from '../domain/client/client.js'
import type { Executor } from './database.js'

/** Registered relying applications that are not deleted, by id. */
export async function listClients(db: Executor) {
  return db.selectFrom('clients').select(['client_id', 'name', 'redirect_uris', 'public', 'created_at', 'version'])
    .where('deleted', '=', false).orderBy('client_id').execute()
}

/** One relying application's state (not deleted), or an absent one. */
export async function loadClient(db: Executor, clientId: string): Promise<ClientState> {
  const row = await db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst()
  if (!row) return initialClientState(clientId)
  return { clientId, exists: !row.deleted, name: row.name, redirectUris: row.redirect_uris, public: row.public, version: row.version }
}

/** The relying application's display name, or its id when it has none (or is unknown). */
export async function clientName(db: Executor, clientId: string): Promise<string> {
  const row = await db.selectFrom('clients').select('name').where('client_id', '=', clientId).executeTakeFirst()
  return row?.name ?? clientId
}
