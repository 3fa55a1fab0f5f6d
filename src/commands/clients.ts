// Registering a relying application. A confidential client's secret is shown once and stored as a hash.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { clientStream, decideChangeClient, decideDeleteClient, decideRegisterClient, decideRotateSecret, initialClientState, type ClientEvent, type ClientState } from '../domain/client/client.js'
import { loadClient } from '../read-models/clients.js'
import type { EventMetadata } from '../event-store/types.js'
import { appendWithProjections } from './append.js'
import { clientChanged } from '../oidc/client-cache.js'
import { retryOnConflict, type CommandContext } from './context.js'

export function hashClientSecret(secret: string): string {
  return `sha256$${createHash('sha256').update(secret).digest('hex')}`
}

export function compareClientSecret(presented: string, stored: string | undefined): boolean {
  const expected = Buffer.from(stored?.startsWith('sha256$') ? stored.slice(7) : '0'.repeat(64), 'hex')
  const actual = createHash('sha256').update(typeof presented === 'string' ? presented : '').digest()
  return timingSafeEqual(actual, expected) && !!stored
}

export async function registerClient(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  input: { clientId: string; name: string; redirectUris: string[]; public: boolean },
  meta: EventMetadata,
): Promise<{ clientId: string; secret: string | null }> {
  const existing = await ctx.db.selectFrom('clients').select('client_id').where('client_id', '=', input.clientId).executeTakeFirst()
  const state = existing ? { ...initialClientState(input.clientId), exists: true } : initialClientState(input.clientId)
  const events = decideRegisterClient(state, input)
  const secret = input.public ? null : randomBytes(32).toString('base64url')
  await ctx.db.transaction().execute(async (trx) => {
    await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, clientStream(input.clientId), 'no-stream', events, meta)
    if (secret) await trx.insertInto('client_secrets').values({ client_id: input.clientId, secret_hash: hashClientSecret(secret) }).execute()
  })
  ctx.store.committed()
  clientChanged(input.clientId)
  return { clientId: input.clientId, secret }
}

/** Loads, decides, appends with the expected version (and, in the same transaction, what `also` does). */
async function changeClient(
  ctx: Pick<CommandContext, 'db' | 'store'>, clientId: string, meta: EventMetadata,
  decide: (state: ClientState) => ClientEvent[], also?: (trx: CommandContext['db']) => Promise<void>,
): Promise<boolean> {
  return retryOnConflict(async () => {
    const state = await loadClient(ctx.db, clientId)
    const events = decide(state)
    if (events.length === 0) return false
    await ctx.db.transaction().execute(async (trx) => {
      await appendWithProjections({ ...ctx, db: trx as never, deferCommit: true }, clientStream(clientId), state.version, events, meta)
      if (also) await also(trx as never)
    })
    ctx.store.committed()
    clientChanged(clientId)
    return true
  })
}

export function updateClient(ctx: Pick<CommandContext, 'db' | 'store'>, input: { clientId: string; name: string; redirectUris: string[] }, meta: EventMetadata) {
  return changeClient(ctx, input.clientId, meta, (state) => decideChangeClient(state, input))
}

/** A new secret, shown once; the old one stops working in the same transaction. */
export async function rotateClientSecret(ctx: Pick<CommandContext, 'db' | 'store'>, clientId: string, meta: EventMetadata): Promise<string> {
  const secret = randomBytes(32).toString('base64url')
  await changeClient(ctx, clientId, meta, decideRotateSecret, async (trx) => {
    await trx.insertInto('client_secrets').values({ client_id: clientId, secret_hash: hashClientSecret(secret) })
      .onConflict((oc) => oc.column('client_id').doUpdateSet({ secret_hash: hashClientSecret(secret) })).execute()
  })
  return secret
}

/** Deleted for good: the provider no longer knows it, its secret is destroyed; its history stays. */
export function deleteClient(ctx: Pick<CommandContext, 'db' | 'store'>, clientId: string, meta: EventMetadata) {
  return changeClient(ctx, clientId, meta, decideDeleteClient, async (trx) => {
    await trx.deleteFrom('client_secrets').where('client_id', '=', clientId).execute()
  })
}
