// The clients read model: relying applications registered with `tessera clients add`.
import type { Executor } from './database.js'

/** The relying application's display name, or its id when it has none (or is unknown). */
export async function clientName(db: Executor, clientId: string): Promise<string> {
  const row = await db.selectFrom('clients').select('name').where('client_id', '=', clientId).executeTakeFirst()
  return row?.name ?? clientId
}
