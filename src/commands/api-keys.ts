// API keys: `tsk_<id>_<secret>`, shown once at creation. The id finds the row, the secret's sha256 is
// compared in constant time (a 32-byte random secret needs no slow hash). Events on api-key-<id>.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { EventMetadata } from '../event-store/types.js'
import { appendWithProjections } from './append.js'
import type { CommandContext } from './context.js'

export type ApiRole = 'admin' | 'auditor'
export const API_ROLES: readonly ApiRole[] = ['admin', 'auditor']

export class InvalidApiKey extends Error {
  override name = 'InvalidApiKey'
}

const hash = (secret: string) => createHash('sha256').update(secret).digest()

export async function createApiKey(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  input: { role: ApiRole; name: string },
  meta: EventMetadata,
): Promise<{ id: string; key: string }> {
  if (!API_ROLES.includes(input.role)) throw new InvalidApiKey(`the role must be one of ${API_ROLES.join(', ')}`)
  const name = input.name.trim()
  if (name.length < 1 || name.length > 100) throw new InvalidApiKey('the name must be 1 to 100 characters')
  const id = randomBytes(6).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  await ctx.db.transaction().execute(async (trx) => {
    await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, `api-key-${id}`, 'no-stream',
      [{ type: 'ApiKeyCreated', data: { id, role: input.role, name } }], meta)
    await trx.insertInto('api_keys').values({ id, name, role: input.role, secret_hash: hash(secret), created_at: new Date(), revoked_at: null }).execute()
  })
  ctx.store.committed()
  return { id, key: `tsk_${id}_${secret}` }
}

/** The key's id and role, or null: unknown, revoked or wrong keys all look the same. */
export async function checkApiKey(ctx: Pick<CommandContext, 'db'>, presented: string): Promise<{ id: string; role: ApiRole } | null> {
  const match = /^tsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(presented)
  const row = match ? await ctx.db.selectFrom('api_keys').selectAll().where('id', '=', match[1]!).executeTakeFirst() : undefined
  const expected = row?.secret_hash ?? Buffer.alloc(32)
  const ok = timingSafeEqual(hash(match?.[2] ?? ''), expected)
  if (!row || !ok || row.revoked_at) return null
  return { id: row.id, role: row.role as ApiRole }
}

/** Revokes a key at once: every process refuses it from its next request. */
export async function revokeApiKey(ctx: Pick<CommandContext, 'db' | 'store'>, id: string, meta: EventMetadata): Promise<void> {
  const key = await ctx.db.selectFrom('api_keys').select(['id', 'revoked_at']).where('id', '=', id).executeTakeFirst()
  if (!key) throw new InvalidApiKey(`no API key ${id}`)
  if (key.revoked_at) throw new InvalidApiKey(`API key ${id} is already revoked`)
  await ctx.db.transaction().execute(async (trx) => {
    await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, `api-key-${id}`, 1, [{ type: 'ApiKeyRevoked', data: { id } }], meta)
    await trx.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', id).execute()
  })
  ctx.store.committed()
}
