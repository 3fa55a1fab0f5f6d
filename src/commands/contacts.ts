// Where a user can be reached (Defender's `mobile` and `email` attributes), set by an admin or at
// `tessera users add`: the number or address a phone or e-mail method is programmed from, and where notices
// go (a method added or removed: NIST SP 800-63B-4 section 4.1 asks that the user hear of it elsewhere).
import { sql } from 'kysely'
import { InvalidUser } from '../domain/user/decide.js'
import { userStream } from '../domain/user/events.js'
import type { EventMetadata } from '../event-store/types.js'
import { BadDestination, maskEmail, maskMobile, parseEmail, parseMobile } from '../methods/sent-code/destination.js'
import type { Executor } from '../read-models/database.js'
import { findUserByUpn } from '../read-models/users.js'
import { appendWithProjections } from './append.js'
import { retryOnConflict, type CommandContext } from './context.js'
import type { SeedVault } from '../crypto/vault.js'
import { noticeAad } from '../methods/sent-code/challenge.js'

export interface Contact {
  email: string | null
  mobile: string | null
}

export async function contactOf(db: Executor, userId: string): Promise<Contact> {
  const row = (await sql<Contact>`select email, mobile from user_contacts where user_id = ${userId}`.execute(db)).rows[0]
  return row ?? { email: null, mobile: null }
}

/**
 * Sets the user's e-mail address and mobile number (undefined: unchanged; null or '': removed), validated
 * (E.164 for the number, with `country` for a national one). UserContactChanged (masked) and the row together.
 */
export async function setUserContact(
  ctx: Pick<CommandContext, 'db' | 'store' | 'now'>,
  input: { upn: string; email?: string | null; mobile?: string | null; country?: string },
  meta: EventMetadata,
): Promise<Contact> {
  let email: string | null | undefined
  let mobile: string | null | undefined
  // A refusal names its field, so a form can say it next to that field.
  const checked = <T>(field: 'email' | 'mobile', parse: () => T): T => {
    try {
      return parse()
    } catch (error) {
      if (error instanceof BadDestination) throw Object.assign(new InvalidUser(error.message), { field })
      throw error
    }
  }
  email = checked('email', () => (input.email === undefined ? undefined : input.email ? parseEmail(input.email) : null))
  mobile = checked('mobile', () => (input.mobile === undefined ? undefined : input.mobile ? parseMobile(input.mobile, input.country ?? '') : null))
  return retryOnConflict(async () => {
    const user = await findUserByUpn(ctx.db, input.upn)
    if (!user) throw Object.assign(new InvalidUser(`no user ${input.upn}`), { statusCode: 404 })
    const before = await contactOf(ctx.db, user.id)
    const after = { email: email === undefined ? before.email : email, mobile: mobile === undefined ? before.mobile : mobile }
    if (after.email === before.email && after.mobile === before.mobile) return after
    await ctx.db.transaction().execute(async (trx) => {
      await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), user.version, [{ type: 'UserContactChanged',
        data: { userId: user.id, email: after.email && maskEmail(after.email), mobile: after.mobile && maskMobile(after.mobile) } }], meta)
      await sql`insert into user_contacts (user_id, email, mobile, updated_at) values (${user.id}, ${after.email}, ${after.mobile}, ${ctx.now()})
        on conflict (user_id) do update set email = excluded.email, mobile = excluded.mobile, updated_at = excluded.updated_at`.execute(trx)
    })
    ctx.store.committed()
    return after
  })
}

/** How long a notice may wait for a mail server. */
const NOTICE_HOURS = 24

/**
 * Queues an e-mail to the user's address, in the caller's transaction (so it is sent if and only if the
 * change it tells of is committed); nothing when the user has no address. The message is sealed at rest.
 */
export async function queueNotice(trx: Executor, vault: SeedVault, input: { userId: string; subject: string; text: string; now: Date }): Promise<boolean> {
  const { email } = await contactOf(trx, input.userId)
  if (!email) return false
  const id = (await sql<{ id: string }>`select nextval(pg_get_serial_sequence('deliveries', 'id')) as id`.execute(trx)).rows[0]!.id
  const sealed = vault.seal(noticeAad(id), Buffer.from(JSON.stringify({ to: email, subject: input.subject, text: input.text }), 'utf8'))
  await sql`insert into deliveries (id, serial, challenge, user_id, channel, destination_hash, key_id, nonce, message, next_attempt_at, expires_at, created_at)
    values (${id}, '', null, ${input.userId}, 'email', ${vault.keyedHash('destination', email)}, ${sealed.keyId}, ${sealed.nonce}, ${sealed.ciphertext},
      ${input.now}, ${new Date(input.now.getTime() + NOTICE_HOURS * 3_600_000)}, ${input.now})`.execute(trx)
  return true
}

/** The e-mail that tells a user a sign-in method was added to or removed from their account. */
export function methodChangeNotice(input: { added: boolean; method: string; byAdmin: boolean; sourceIp: string | null; at: Date }): { subject: string; text: string } {
  const when = input.at.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })
  const what = input.added ? 'added to' : 'removed from'
  return {
    subject: `A sign-in method was ${what} your account`,
    text: `${input.method} was ${what} your sign-in methods on ${when} UTC${input.byAdmin ? ' by an administrator' : ''}`
      + `${input.sourceIp ? ` from address ${input.sourceIp}` : ''}.\n\nIf this wasn't you, contact your administrator at once: someone may have your password.`,
  }
}
