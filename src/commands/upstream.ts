// Identity brokering: a user who signs in at the upstream provider is the local user linked to that
// (issuer, subject). The first time, the link is made to the local user whose user principal name is
// the upstream e-mail address, and recorded on the user's stream. Nobody else is let in.
import { sql } from 'kysely'
import { userStream } from '../domain/user/events.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import type { EventMetadata } from '../event-store/types.js'
import { findUser, findUserByUpn, type UsersTable } from '../read-models/users.js'
import { appendWithProjections } from './append.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'

export class UnverifiedEmail extends Error {
  override name = 'UnverifiedEmail'
  constructor() {
    super('Your sign-in provider has not verified your e-mail address, so we cannot match it to a Tessera account.')
  }
}

export class NoLocalAccount extends Error {
  override name = 'NoLocalAccount'
  constructor(email: string | null) {
    super(email
      ? `There is no Tessera account for ${email}. Ask your administrator to add you.`
      : 'Your sign-in provider did not tell us your e-mail address, so we cannot find your Tessera account.')
  }
}

export async function upstreamUser(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  identity: { issuer: string; subject: string; email: string | null; emailVerified: boolean },
  meta: EventMetadata,
): Promise<UsersTable> {
  const link = await ctx.db.selectFrom('upstream_links').select('user_id')
    .where('issuer', '=', identity.issuer).where('subject', '=', identity.subject).executeTakeFirst()
  if (link) {
    const user = await findUser(ctx.db, link.user_id)
    if (user) return user
  }
  // Linking by e-mail trusts the provider to have checked it; an unverified one could be anyone's.
  if (identity.email && !identity.emailVerified) throw new UnverifiedEmail()
  const candidate = identity.email ? await findUserByUpn(ctx.db, identity.email) : undefined
  if (!candidate) throw new NoLocalAccount(identity.email)
  const { password_hash: _, ...user } = candidate
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.db.transaction().execute(async (trx) => {
        // The link first: of two first sign-ins at once, only the one that makes it records the event.
        const made = await sql`insert into upstream_links (issuer, subject, user_id, linked_at)
          values (${identity.issuer}, ${identity.subject}, ${user.id}, now()) on conflict do nothing returning user_id`.execute(trx)
        if (made.rows.length === 0) return
        await appendWithProjections({ ...ctx, db: trx, deferCommit: true }, userStream(user.id), 'any',
          [{ type: 'UserLinkedToUpstream', data: { userId: user.id, issuer: identity.issuer, subject: identity.subject } }], meta)
      })
      ctx.store.committed()
      return user
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}
