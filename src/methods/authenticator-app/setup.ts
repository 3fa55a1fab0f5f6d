// Setting up an authenticator app: a key made here, shown once, proven with the app's first code.
// - The key is 20 bytes from the cryptographic source (RFC 4226's recommended length), sealed in the vault
//   at once under the serial it will have; the set-up row holds it for SETUP_MINUTES and is deleted with it
//   when the token is created, when the set-up expires, or after SETUP_FAILURES wrong codes.
// - Whoever holds the set-up's handle (the user's session, or the desktop app that redeemed an activation
//   code) and is its user may see the key and finish; only a hash of the handle is stored.
// - The app is told SHA1, 6 digits, 30 s: what every authenticator app understands.
// - The key, the otpauth URI and the handle are never in an event, a log line or an error.
import { createHash, randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import QRCode from 'qrcode'
import { ScureBase32Plugin } from '@otplib/plugin-base32-scure'
import { checkTotp, type OtpParams } from '../../domain/otp/otp.js'
import { ACTIVATION_WINDOW_STEPS, decide } from '../../domain/token/decide.js'
import { NotAllowedByPolicy, TokenError, WrongCode } from '../../domain/token/errors.js'
import { effectivePolicy } from '../../read-models/policies.js'
import { initialState, evolve, type TokenState } from '../../domain/token/state.js'
import type { TokenEvent } from '../../domain/token/events.js'
import type { EventMetadata } from '../../event-store/types.js'
import type { Executor } from '../../read-models/database.js'
import { methodChange, writeWithMethodChange } from '../../commands/tokens.js'
import { retryOnConflict, type CommandContext } from '../../commands/context.js'

export const SETUP_MINUTES = 10
/** Wrong first codes a set-up takes; then its key is destroyed and the user starts again. */
export const SETUP_FAILURES = 5
const SEED_BYTES = 20
export const APP_PARAMS: OtpParams & { kind: 'totp'; digits: 6; period: 30 } = { kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30 }

export type SetupBy = 'self' | 'admin'

export class SetupExpired extends TokenError {
  override name = 'SetupExpired'
  constructor() {
    super('This set-up has expired. Start again to get a new QR code.')
  }
}

export class TooManySetupFailures extends TokenError {
  override name = 'TooManySetupFailures'
  constructor() {
    super('Too many wrong codes. This set-up was cancelled: start again, and delete the old account from your app.')
  }
}

const idOf = (handle: string) => createHash('sha256').update(handle, 'utf8').digest()
const sealAad = (serial: string) => serial

export interface StartedSetup {
  /** The bearer handle: kept in the user's session, or given once to the desktop app. */
  handle: string
  serial: string
  expiresAt: Date
}

/**
 * Makes a key for the user's authenticator app, sealed, waiting SETUP_MINUTES for its first code.
 * replace: the user's earlier unfinished set-ups of the same origin (a page reloaded, begun again) are
 * destroyed first, so that at most one waits per user on Security info.
 */
export async function startSetup(
  ctx: Pick<CommandContext, 'vault' | 'now'> & { db: Executor },
  input: { userId: string; by: SetupBy; activationCode: string | null; replace: boolean },
): Promise<StartedSetup> {
  const handle = randomBytes(24).toString('base64url')
  const serial = `APP-${randomBytes(8).toString('hex').toUpperCase()}`
  const seed = randomBytes(SEED_BYTES)
  const sealed = ctx.vault.seal(sealAad(serial), seed)
  seed.fill(0)
  const now = ctx.now()
  const expiresAt = new Date(now.getTime() + SETUP_MINUTES * 60_000)
  if (input.replace) await sql`delete from software_setups where user_id = ${input.userId} and activation_code is null`.execute(ctx.db)
  await sql`insert into software_setups (id, user_id, serial, key_id, nonce, ciphertext, by, activation_code, expires_at, created_at)
    values (${idOf(handle)}, ${input.userId}, ${serial}, ${sealed.keyId}, ${sealed.nonce}, ${sealed.ciphertext}, ${input.by}, ${input.activationCode},
      ${expiresAt}, ${now})`.execute(ctx.db)
  return { handle, serial, expiresAt }
}

interface SetupRow {
  user_id: string
  serial: string
  key_id: string
  nonce: Buffer
  ciphertext: Buffer
  by: SetupBy
  activation_code: string | null
  failures: number
  expires_at: Date
}

/** A handle as the session or a desktop app may send it: anything else names no set-up. */
const isHandle = (handle: unknown): handle is string => typeof handle === 'string' && handle.length > 0 && handle.length <= 100

/** The set-up the handle names while it lives (not expired, not used up by wrong codes), or null. */
async function liveSetup(db: Executor, handle: string, now: Date): Promise<SetupRow | null> {
  if (!isHandle(handle)) return null
  const row = (await sql<SetupRow>`select user_id, serial, key_id, nonce, ciphertext, by, activation_code, failures, expires_at
    from software_setups where id = ${idOf(handle)}`.execute(db)).rows[0]
  return row && row.expires_at > now && row.failures < SETUP_FAILURES ? row : null
}

/** The user's live set-up the handle names, or null. */
async function setupRow(db: Executor, handle: string, userId: string, now: Date): Promise<SetupRow | null> {
  const row = await liveSetup(db, handle, now)
  return row?.user_id === userId ? row : null
}

/** The user a live set-up is for (the desktop app holds only the handle), or null. */
export async function setupOwner(db: Executor, handle: string, now: Date): Promise<string | null> {
  return (await liveSetup(db, handle, now))?.user_id ?? null
}

/** What the app is shown: the otpauth URI (as a QR code, inline SVG) and the key in groups of four. */
export interface AppKey {
  serial: string
  issuer: string
  account: string
  uri: string
  /** An SVG element, made here from the URI alone: safe to inline. */
  qrSvg: string
  groups: string[]
  expiresAt: Date
}

/** The Key URI Format of Google Authenticator, which every app reads: issuer in the label and as a parameter. */
export function otpauthUri(input: { issuer: string; account: string; secret: string }): string {
  const label = `${encodeURIComponent(input.issuer)}:${encodeURIComponent(input.account)}`
  const query = new URLSearchParams({ secret: input.secret, issuer: input.issuer, algorithm: APP_PARAMS.algorithm,
    digits: String(APP_PARAMS.digits), period: String(APP_PARAMS.period) })
  return `otpauth://totp/${label}?${query.toString().replace(/\+/g, '%20')}`
}

const base32 = new ScureBase32Plugin()

/** The set-up's key for its user, as the app takes it; null when the handle names no live set-up of theirs. */
export async function appKey(
  ctx: Pick<CommandContext, 'vault' | 'now'> & { db: Executor }, input: { handle: string; userId: string; issuer: string; account: string },
): Promise<AppKey | null> {
  const row = await setupRow(ctx.db, input.handle, input.userId, ctx.now())
  if (!row) return null
  const seed = ctx.vault.open(sealAad(row.serial), { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext })
  const secret = base32.encode(seed, { padding: false })
  seed.fill(0)
  const uri = otpauthUri({ issuer: input.issuer, account: input.account, secret })
  const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 })
  return { serial: row.serial, issuer: input.issuer, account: input.account, uri, qrSvg, groups: secret.match(/.{1,4}/g) ?? [], expiresAt: row.expires_at }
}

/**
 * The app's first code: a right one creates the software token, active (SoftwareTokenCreated, its name,
 * TokenActivated, the user's SignInMethodAdded and notice, the sealed key in token_secrets) and ends the
 * set-up, all in one transaction; of two at once, one wins. A wrong one is counted on the set-up; at
 * SETUP_FAILURES its key is destroyed.
 */
export async function finishSetup(
  ctx: CommandContext, input: { handle: string; userId: string; code: string; name?: string | null }, meta: EventMetadata,
): Promise<TokenState> {
  const now = ctx.now()
  const row = await setupRow(ctx.db, input.handle, input.userId, now)
  if (!row) throw new SetupExpired()
  if (!(await effectivePolicy(ctx.db, input.userId)).settings.methods.includes('app')) throw new NotAllowedByPolicy()
  const sealed = { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext }
  const seed = ctx.vault.open(sealAad(row.serial), sealed)
  const check = checkTotp(seed, APP_PARAMS, input.code.trim(), now.getTime() / 1000, ACTIVATION_WINDOW_STEPS)
  const fingerprint = ctx.vault.fingerprint(seed)
  // Sealed again under the vault's current key: a master key rotated since the set-up began covers it.
  const resealed = ctx.vault.seal(sealAad(row.serial), seed)
  seed.fill(0)
  const id = idOf(input.handle)
  if (!check.valid) {
    const counted = (await sql<{ failures: number }>`update software_setups set failures = failures + 1 where id = ${id} returning failures`.execute(ctx.db)).rows[0]
    if (!counted || counted.failures >= SETUP_FAILURES) {
      await sql`delete from software_setups where id = ${id}`.execute(ctx.db)
      throw new TooManySetupFailures()
    }
    throw new WrongCode()
  }
  const before = initialState(row.serial)
  const decision = decide(before, { type: 'CreateSoftwareToken', data: { userId: input.userId, algorithm: APP_PARAMS.algorithm, digits: APP_PARAMS.digits,
    period: APP_PARAMS.period, seedFingerprint: fingerprint, by: row.by, activationCode: row.activation_code, name: input.name ?? null, check } })
  if (decision.refusal) throw decision.refusal
  const change = methodChange(before, decision.events, meta)!
  await retryOnConflict(() => ctx.db.transaction().execute(async (trx) => {
    // The set-up ends here, or another request ended it first (or a password reset, a disable): one token per key.
    const won = await sql`delete from software_setups where id = ${id} and failures < ${SETUP_FAILURES} returning serial`.execute(trx)
    if (won.rows.length === 0) throw new SetupExpired()
    const account = (await sql<{ disabled: boolean; deleted: boolean }>`select disabled, deleted from users where id = ${input.userId}`.execute(trx)).rows[0]
    if (!account || account.disabled || account.deleted) throw new SetupExpired()
    await sql`insert into token_secrets (serial, key_id, nonce, ciphertext) values (${row.serial}, ${resealed.keyId}, ${resealed.nonce}, ${resealed.ciphertext})`.execute(trx)
    await writeWithMethodChange({ ...ctx, db: trx }, before, decision.events, change, meta, 'no-stream')
  }))
  ctx.store.committed()
  let after = before
  for (const e of decision.events as TokenEvent[]) after = evolve(after, e, now)
  return after
}

/** Cancels the user's set-up (the Cancel button): its key is destroyed. */
export async function cancelSetup(db: Executor, handle: string, userId: string): Promise<void> {
  if (!isHandle(handle)) return
  await sql`delete from software_setups where id = ${idOf(handle)} and user_id = ${userId}`.execute(db)
}

/** Set-ups whose time ran out: their keys are destroyed. Returns how many. */
export async function destroyExpiredSetups(db: Executor, now: Date): Promise<number> {
  const result = await sql`delete from software_setups where expires_at <= ${now}`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
