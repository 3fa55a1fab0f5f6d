// Ending what a user asked for and has not finished: live activation codes and set-ups waiting for an app's
// first code. Called in the transaction of the change that ends them (a password reset, an account
// disabled or deleted, a method removed), which appends the events returned with its own.
import { sql } from 'kysely'
import type { UserEvent } from '../../domain/user/events.js'
import type { Executor } from '../../read-models/database.js'

export type EndReason = 'account-deleted' | 'account-disabled' | 'password-reset' | 'method-removed' | 'revoked'

/**
 * Ends the user's live codes (only the ones they asked for themselves, with `selfOnly`) and destroys the keys
 * of the set-ups that came from them (all the user's set-ups, without `selfOnly`). Returns the events.
 */
export async function endSoftwareRequests(trx: Executor, userId: string, reason: EndReason, options: { selfOnly?: boolean } = {}): Promise<UserEvent[]> {
  const only = options.selfOnly ? sql`and by = 'self'` : sql``
  const ended = await sql<{ id: string }>`update activation_codes set status = 'ended'
    where user_id = ${userId} and status = 'issued' ${only} returning id`.execute(trx)
  if (options.selfOnly) {
    await sql`delete from software_setups s using activation_codes c
      where s.user_id = ${userId} and s.activation_code = c.id and c.by = 'self'`.execute(trx)
  } else {
    await sql`delete from software_setups where user_id = ${userId}`.execute(trx)
  }
  return ended.rows.map((r): UserEvent => ({ type: 'ActivationCodeExpired', data: { userId, code: r.id, reason } }))
}
