// Registering a relying application. A confidential client's secret is shown once and stored as a hash.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { clientStream, decideRegisterClient, initialClientState } from '../domain/client/client.js'
import type { EventMetadata } from '../event-store/types.js'
import { appendWithProjections } from './append.js'
import type { CommandContext } from './context.js'

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
  return { clientId: input.clientId, secret }
}
