// Temporary codes: for a user who lost their token, an admin issues a code (shown once) that the user
// enters on the Enter code page instead of a token's code, for a few days or just once.
// - 12 digits in three groups (1234-5678-9012), so it cannot be mistaken for a token's 6 or 8 digits.
// - Only a sha256 is stored (the code is random, 40 bits, and valid for days at most, behind rate limits).
// - A one-time code is used by a compare-and-set: of two racing requests, one wins.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto'
import { sql } from 'kysely'
import { userStream } from '../domain/user/events.js'
import type { EventMetadata } from '../event-store/types.js'
import { effectivePolicy } from '../read-models/policies.js'
import { appendWithProjections } from './append.js'
import { retryOnConflict, type CommandContext } from './context.js'

export const TEMPORARY_CODE = /^\d{4}-?\d{4}-?\d{4}$/

export class InvalidTemporaryCode extends Error {
  override name = 'InvalidTemporaryCode'
  statusCode = 422
}

const hash = (code: string) => createHash('sha256').update(code.replace(/-/g, '')).digest()

async function appendUserEvent(ctx: Pick<CommandContext, 'db' | 'store'>, userId: string, event: { type: string; data: Record<string, unknown> }, meta: EventMetadata) {
  return retryOnConflict(() => appendWithProjections(ctx, userStream(userId), 'any', [event], meta))
}

/**
 * Issues a code for the user, replacing any earlier one. Returns it: the only time it is shown.
 * - The user's effective policy must allow temporary codes, for at most its temporaryCodeMaxDays.
 */
export async function issueTemporaryCode(
  ctx: Pick<CommandContext, 'db' | 'store' | 'now'>,
  input: { userId: string; validDays: number; oneTime: boolean },
  meta: EventMetadata,
): Promise<{ code: string; expiresAt: Date }> {
  const { settings, name } = await effectivePolicy(ctx.db, input.userId)
  if (!settings.methods.includes('temporary_code')) {
    throw new InvalidTemporaryCode(`the user's security policy (${name}) does not allow temporary codes`)
  }
  if (!Number.isInteger(input.validDays) || input.validDays < 1 || input.validDays > settings.temporaryCodeMaxDays) {
    throw new InvalidTemporaryCode(`validity must be 1 to ${settings.temporaryCodeMaxDays} days under the user's security policy (${name})`)
  }
  const digits = Array.from({ length: 12 }, () => randomInt(10)).join('')
  const code = `${digits.slice(0, 4)}-${digits.slice(4, 8)}-${digits.slice(8)}`
  const expiresAt = new Date(ctx.now().getTime() + input.validDays * 86_400_000)
  // The code's row and its event commit together: no code without its record, nor the other way round.
  await ctx.db.transaction().execute(async (trx) => {
    await sql`insert into temporary_codes (user_id, code_hash, one_time, expires_at, used_at)
              values (${input.userId}, ${hash(code)}, ${input.oneTime}, ${expiresAt}, null)
              on conflict (user_id) do update set code_hash = excluded.code_hash, one_time = excluded.one_time,
                expires_at = excluded.expires_at, used_at = null`.execute(trx)
    await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(input.userId), 'any',
      [{ type: 'TemporaryCodeIssued', data: { userId: input.userId, expiresAt: expiresAt.toISOString(), oneTime: input.oneTime } }], meta)
  })
  ctx.store.committed()
  return { code, expiresAt }
}

/**
 * True when the code is the user's valid temporary code (and, when one-time, this request used it),
 * and the user's effective policy still allows temporary codes.
 */
export async function useTemporaryCode(
  ctx: Pick<CommandContext, 'db' | 'store' | 'now'>,
  input: { userId: string; code: string; relyingApplication: string | null },
  meta: EventMetadata,
): Promise<boolean> {
  const row = await ctx.db.selectFrom('temporary_codes').selectAll().where('user_id', '=', input.userId).executeTakeFirst()
  const presented = hash(input.code)
  const matches = timingSafeEqual(presented, row?.code_hash ?? Buffer.alloc(32))
  if (!row || !matches || row.expires_at <= ctx.now() || (row.one_time && row.used_at)) return false
  if (!(await effectivePolicy(ctx.db, input.userId)).settings.methods.includes('temporary_code')) return false
  if (row.one_time) {
    const won = await sql`update temporary_codes set used_at = now()
      where user_id = ${input.userId} and code_hash = ${presented} and used_at is null returning user_id`.execute(ctx.db)
    if (won.rows.length === 0) return false
  }
  await appendUserEvent(ctx, input.userId, { type: 'TemporaryCodeUsed', data: { userId: input.userId, relyingApplication: input.relyingApplication } }, meta)
  return true
}
