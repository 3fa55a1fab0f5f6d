// Remote credentials: an admin gives one to a user (the service and the credential's id there), and a code
// for one is asked of its service.
// - A credential of a service has one live holder; its user's policy must allow `remote` and one more method.
// - A code is accepted once: its keyed hash is reserved before the service is asked (remote_codes, kept for
//   the service's code lifetime), so the same code sent twice, at once or later, on any process, reaches
//   the service once; a refused or unanswered code gives its reservation back.
// - No answer fails closed ("We couldn't check your code right now"), without counting against the user;
//   a service that keeps failing is paused for a while (breaker.ts) and users are told so.
// - The service's word for its answer goes in the event; the code never does.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import type { CommandContext } from '../../commands/context.js'
import { decideOn, TooManyMethods } from '../../commands/tokens.js'
import type { RemoteOutcome } from '../../domain/token/decide.js'
import { NotAllowedByPolicy, TokenError } from '../../domain/token/errors.js'
import type { TokenState } from '../../domain/token/state.js'
import type { OtpCheck } from '../../domain/otp/otp.js'
import type { EventMetadata } from '../../event-store/types.js'
import { remoteVerifications } from '../../metrics.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { activeTokensOfUser } from '../../read-models/tokens.js'
import { loadRemoteService, remoteClient } from './services.js'
import { UnknownRemoteService } from './service.js'

const SERVICE_ID = /^[a-z0-9][a-z0-9-]{0,39}$/

/** A credential's id at its service: a VIP credential id (VSMT12345678), or a RADIUS user name. */
const CREDENTIAL = { vip: /^[A-Za-z0-9-]{4,64}$/, radius: /^[\x21-\x7e]{1,64}$/ }

export class CredentialTaken extends TokenError {
  override name = 'CredentialTaken'
  constructor() {
    super('This credential is already given to a user. Revoke it there first.')
  }
}

export class InvalidCredential extends TokenError {
  override name = 'InvalidCredential'
  constructor() {
    super('The credential id must be 1 to 64 printable characters without spaces (a VIP credential id such as VSMT12345678, or the RADIUS user name).')
  }
}

/**
 * Gives a user a remote credential, usable at once: RemoteCredentialAssigned, SignInMethodAdded and the user's
 * notice in one transaction. A new serial (REMOTE-…) names it.
 */
export async function assignRemoteCredential(
  ctx: CommandContext, input: { userId: string; service: string; credential: string; digits?: 6 | 8 }, meta: EventMetadata,
): Promise<TokenState> {
  const service = typeof input.service === 'string' && SERVICE_ID.test(input.service) ? await loadRemoteService(ctx.db, input.service) : null
  if (!service?.exists || !service.settings) throw new UnknownRemoteService(String(input.service).replace(/[\p{Cc}]/gu, '').slice(0, 40))
  const credential = typeof input.credential === 'string' ? input.credential.trim() : ''
  if (!CREDENTIAL[service.settings.protocol].test(credential)) throw new InvalidCredential()
  const digits = input.digits ?? 6
  if (digits !== 6 && digits !== 8) throw new InvalidCredential()
  const [policy, methods] = await Promise.all([effectivePolicy(ctx.db, input.userId), activeTokensOfUser(ctx.db, input.userId)])
  if (!policy.settings.methods.includes('remote')) throw new NotAllowedByPolicy()
  if (methods.length >= policy.settings.maxMethods) throw new TooManyMethods(policy.settings.maxMethods)
  const serial = `REMOTE-${randomBytes(6).toString('hex').toUpperCase()}`
  return decideOn(ctx, serial, meta, { type: 'AssignRemoteCredential', data: { userId: input.userId, service: service.id, credential, digits } }, async (trx) => {
    // One live holder per credential, and none for a service being removed (services.ts takes the same lock).
    await sql`select pg_advisory_xact_lock(hashtext(${`remote-service:${service.id}`}))`.execute(trx)
    const live = await sql<{ exists: boolean }>`select exists (select 1 from remote_services where id = ${service.id} and exists) as exists`.execute(trx)
    if (!live.rows[0]!.exists) throw new UnknownRemoteService(service.id)
    const taken = await sql`select 1 from tokens where remote_service = ${service.id} and remote_credential = ${credential} and status <> 'revoked'`.execute(trx)
    if (taken.rows.length > 0) throw new CredentialTaken()
  })
}

/**
 * What a code is remembered under: the credential at its service, not the token that holds it, so a
 * credential revoked and given to someone else does not take a code it accepted before.
 */
const credentialKey = (state: TokenState) => `${state.remoteService} ${state.remoteCredential}`
const codeHash = (ctx: Pick<CommandContext, 'vault'>, key: string, code: string) => ctx.vault.keyedHash('remote-code', `${key}\u0000${code}`)

/**
 * The check of a code for a remote credential, and what its service said. `memo` holds the service's answer
 * for this verification: a verification that writes again after a conflict does not ask twice.
 */
export async function remoteCheck(
  ctx: Pick<CommandContext, 'db' | 'vault'>, state: TokenState, code: string, memo: Map<string, RemoteOutcome>,
): Promise<{ check: OtpCheck; remote: RemoteOutcome }> {
  let remote = memo.get(state.serial)
  if (!remote) {
    remote = await ask(ctx, state, code)
    memo.set(state.serial, remote)
    remoteVerifications.inc({ service: state.remoteService ?? 'none', outcome: remote.outcome })
  }
  // Each acceptance is the next step, so the token's replay guard and the audit count them like any other.
  const check: OtpCheck = remote.outcome === 'accepted' ? { valid: true, step: (state.lastStep ?? 0) + 1, drift: 0 } : { valid: false }
  return { check, remote }
}

async function ask(ctx: Pick<CommandContext, 'db' | 'vault'>, state: TokenState, code: string): Promise<RemoteOutcome> {
  // A service whose configuration cannot be read (its secrets do not open) is no answer, not a fault.
  const client = state.remoteService ? await remoteClient(ctx, state.remoteService).catch(() => null) : null
  if (!client || !state.remoteCredential) return { outcome: 'unavailable', reason: 'no-service' }
  if (!/^\d{6,8}$/.test(code)) return { outcome: 'rejected', reason: 'not-sent' }
  const key = credentialKey(state)
  const hash = codeHash(ctx, key, code)
  const reserved = await sql`insert into remote_codes (credential_key, code_hash, expires_at)
      values (${key}, ${hash}, now() + make_interval(secs => ${client.service.codeLifetimeSeconds}))
      on conflict (credential_key, code_hash) do update set expires_at = excluded.expires_at where remote_codes.expires_at < now()
      returning 1`.execute(ctx.db)
  if (reserved.rows.length === 0) return { outcome: 'replayed', reason: 'replayed' }
  // A code refused, or not checked, gives its reservation back; if that fails, the code stays unusable
  // until its lifetime ends, which refuses nothing that should pass.
  const release = () => sql`delete from remote_codes where credential_key = ${key} and code_hash = ${hash}`.execute(ctx.db).catch(() => {})
  const paused = client.breaker.pausedFor()
  if (paused > 0) {
    await release()
    return { outcome: 'paused', reason: 'paused', seconds: Math.max(1, Math.ceil(paused / 1000)) }
  }
  const answer = await client.validate(state.remoteCredential, code).catch((error: Error) =>
    ({ result: 'unavailable' as const, reason: 'internal-error', message: error.message.replaceAll(code, '******') }))
  // The breaker hears of the answer before anything else can fail.
  if (answer.result === 'unavailable') client.breaker.failed()
  else client.breaker.answered()
  if (answer.result === 'accept') return { outcome: 'accepted', reason: answer.reason }
  await release()
  return answer.result === 'reject' ? { outcome: 'rejected', reason: answer.reason } : { outcome: 'unavailable', reason: answer.reason }
}

/** Forgets the accepted codes whose lifetime is over (the sweeper, every minute). */
export async function sweepRemoteCodes(db: CommandContext['db']): Promise<number> {
  const gone = await sql`delete from remote_codes where expires_at < now()`.execute(db)
  return Number(gone.numAffectedRows ?? 0)
}
