// The `tessera` subcommands that change things: tokens, users, keys, API keys.
import { findUserByUpn } from '../read-models/users.js'
import { ActivationRefused, formatActivationCode, requestActivationCode } from '../methods/authenticator-app/activation-codes.js'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import { exportEventsTo, type ExportFormat } from '../audit/export.js'
import { INSTANT_EXAMPLE, parseInstant } from '../audit/instant.js'
import { describedReplay } from '../audit/state-as-of.js'
import { createApiKey, revokeApiKey, type ApiRole } from '../commands/api-keys.js'
import { registerClient } from '../commands/clients.js'
import { rotateSigningKey } from '../oidc/signing-keys.js'
import { importTokens } from '../commands/import-tokens.js'
import { releaseToken, revokeToken, unlockToken } from '../commands/tokens.js'
import { plural } from '../routes/words.js'
import { resolveStream } from '../read-models/users.js'
import { TokenError } from '../domain/token/errors.js'
import { REVOCATION_REASONS, type RevocationReason } from '../domain/token/events.js'
import { reencryptSeeds, sealedUnderOtherKeys } from '../commands/rotate-keys.js'
import { grantRole, registerUser } from '../commands/users.js'
import { deleteUser, resetPassword } from '../commands/accounts.js'
import { setUserContact } from '../commands/contacts.js'
import { BadDestination, parseEmail, parseMobile } from '../methods/sent-code/destination.js'
import { UserError } from '../domain/user/decide.js'
import type { Role } from '../domain/user/events.js'
import { addKeyringKey, openVault } from '../crypto/keyring.js'
import { looksLikeXml, parseInventory, type PskcSecret } from '../import/index.js'
import { INVENTORY_FORMATS, UnusableFile, type InventoryFormat } from '../import/types.js'

/** The first bytes of a file, to tell XML from CSV. */
async function fileStart(file: string): Promise<string> {
  const { open } = await import('node:fs/promises')
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(256)
    const { bytesRead } = await handle.read(buffer, 0, 256, 0)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } finally {
    await handle.close()
  }
}
import { CliError, openContext } from './context.js'

export interface Io {
  out: (line: string) => void
  err: (line: string) => void
  /** The progress line (rewritten in place); null when stderr is not a terminal. */
  progress: ((line: string) => void) | null
  stdin: () => Promise<string>
}

/**
 * tessera tokens import FILE [--format entra|oath|pskc] [--psk HEX | --password-stdin]: exit 0 all imported,
 * 1 some rows rejected, 2 nothing usable. Without --format, an XML file is PSKC and any other Entra CSV.
 */
export async function tokensImport(io: Io, file: string | undefined, format: string | undefined,
  keys: { psk?: string; passwordStdin?: boolean } = {}): Promise<number> {
  if (!file) throw new CliError('tessera tokens import needs a file: tessera tokens import FILE [--format entra|oath|pskc]')
  if (!existsSync(file)) throw new CliError(`no file ${file}`)
  const chosen = (format ?? (looksLikeXml(await fileStart(file)) ? 'pskc' : 'entra')) as InventoryFormat
  if (!INVENTORY_FORMATS.includes(chosen)) throw new CliError(`--format must be entra, oath or pskc, not ${format}`)
  if ((keys.psk !== undefined || keys.passwordStdin) && chosen !== 'pskc') throw new CliError('--psk and --password-stdin are for PSKC files (--format pskc)')
  if (keys.psk !== undefined && keys.passwordStdin) throw new CliError('give either --psk or --password-stdin, not both')
  let secret: PskcSecret = {}
  if (keys.psk !== undefined) {
    if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(keys.psk)) throw new CliError('--psk must be the pre-shared key in hex: 32, 48 or 64 hex digits')
    secret = { psk: Buffer.from(keys.psk, 'hex') }
  } else if (keys.passwordStdin) {
    const password = (await io.stdin()).replace(/\r?\n$/, '')
    if (!password) throw new CliError('no password on standard input')
    secret = { password }
  }
  const ctx = await openContext()
  try {
    const started = performance.now()
    const report = await importTokens(ctx.commands(), parseInventory(chosen, createReadStream(file), secret), ctx.meta(), {
      format: chosen,
      onProgress: io.progress ? (read, imported) => io.progress!(`importing: ${read.toLocaleString('en')} rows read, ${imported.toLocaleString('en')} imported`) : undefined,
    })
    if (io.progress) io.progress('')
    for (const r of report.rejected) io.err(`line ${r.line}${r.serial ? `, serial ${r.serial}` : ''}: ${r.reason}`)
    // Past the rows reported one by one, the rest by reason.
    if (report.rejectedCount > report.rejected.length) {
      io.err(`and ${plural(report.rejectedCount - report.rejected.length, 'more row')} refused; all refused rows by reason:`)
      for (const [reason, n] of Object.entries(report.rejectedByReason).sort((a, b) => b[1] - a[1])) io.err(`  ${n.toLocaleString('en')} × ${reason}`)
    }
    const seconds = (performance.now() - started) / 1000
    io.out(`imported ${plural(report.imported, 'token')}, rejected ${plural(report.rejectedCount, 'row')} (${seconds.toFixed(1)} s)`)
    return report.rejectedCount > 0 ? 1 : 0
  } catch (error) {
    if (error instanceof UnusableFile) {
      throw new CliError(`${file} cannot be imported: ${error.message}${format || chosen === 'pskc' ? '' : ' (for privacyIDEA files use --format oath)'}`)
    }
    throw error
  } finally {
    await ctx.close()
  }
}

/** tessera users add <upn> --name "..." --password-stdin */
export async function usersAdd(io: Io, upn: string | undefined, name: string | undefined, passwordStdin: boolean, contact: { email?: string; phone?: string } = {}): Promise<number> {
  if (!upn) throw new CliError('tessera users add needs a user principal name: tessera users add alice@example.com --name "Alice" --password-stdin')
  if (!passwordStdin) throw new CliError('give the password on standard input with --password-stdin (never as an argument)')
  // Where the user is reached is checked before anything is written.
  try {
    if (contact.email) parseEmail(contact.email)
    if (contact.phone) parseMobile(contact.phone, '')
  } catch (error) {
    if (error instanceof BadDestination) throw new CliError(error.message, 1)
    throw error
  }
  const password = (await io.stdin()).replace(/\r?\n$/, '')
  const ctx = await openContext()
  try {
    const user = await registerUser(ctx, { upn, displayName: name ?? upn.split('@')[0]!, password }, ctx.meta())
    io.out(`added ${user.upn} (id ${user.userId})`)
    if (contact.email || contact.phone) {
      const set = await setUserContact({ db: ctx.db, store: ctx.store, now: () => new Date() }, { upn: user.upn, email: contact.email, mobile: contact.phone }, ctx.meta())
      io.out(`reached at${set.email ? ` ${set.email}` : ''}${set.mobile ? ` ${set.mobile}` : ''}`)
    }
    return 0
  } catch (error) {
    if ((error as Error).name === 'UserAlreadyExists' || (error as Error).name === 'InvalidUser') throw new CliError((error as Error).message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

/**
 * tessera keys rotate: with the data-directory keyring, adds a new master key and re-encrypts every seed
 * under it; with TESSERA_MASTER_KEY, re-encrypts the seeds still under TESSERA_PREVIOUS_MASTER_KEYS.
 */
export async function keysRotate(io: Io): Promise<number> {
  const ctx = await openContext()
  try {
    const log = (m: string) => io.err(`tessera: ${m}`)
    if (!ctx.config.masterKey) {
      openVault(ctx.config, log) // creates the keyring when there is none yet
      const id = addKeyringKey(ctx.config.dataDir)
      io.out(`new master key ${id} added to the keyring`)
    }
    // Opened after the keyring changed, so the new key is the current one.
    const vault = openVault(ctx.config, log)
    const count = await reencryptSeeds(ctx.db, vault)
    io.out(`re-encrypted ${count} sealed secrets (seeds, remote services' secrets) under master key ${vault.currentKeyId}`)
    const left = await sealedUnderOtherKeys(ctx.db, vault)
    if (left > 0) {
      io.err(`tessera: ${left} sealed secrets are still under an older key (in use during the rotation, or sealed by a process that has not read the new key): run tessera keys rotate again`)
      return 1
    }
    return 0
  } finally {
    await ctx.close()
  }
}

/** tessera api-keys create --role admin|auditor [--name ...]: prints the key once. */
export async function apiKeysCreate(io: Io, role: string | undefined, name: string | undefined): Promise<number> {
  if (role !== 'admin' && role !== 'auditor') throw new CliError('--role must be admin or auditor')
  const ctx = await openContext()
  try {
    const created = await createApiKey(ctx, { role: role as ApiRole, name: name ?? `${role} key` }, ctx.meta())
    io.out(created.key)
    io.err(`API key ${created.id} (${role}) created. It is shown once: store it now. Use it as "Authorization: Bearer <key>".`)
    return 0
  } finally {
    await ctx.close()
  }
}

/** tessera clients add <client-id> --redirect-uri URI [--redirect-uri URI ...] [--public] [--name NAME] */
export async function clientsAdd(io: Io, clientId: string | undefined, redirectUris: string[], isPublic: boolean, name: string | undefined): Promise<number> {
  if (!clientId) throw new CliError('tessera clients add needs a client id: tessera clients add my-app --redirect-uri https://app.example.com/callback')
  const ctx = await openContext()
  try {
    const created = await registerClient(ctx, { clientId, name: name ?? clientId, redirectUris, public: isPublic }, ctx.meta())
    if (created.secret) {
      io.out(created.secret)
      io.err(`relying application ${clientId} registered. Its client secret is shown once: store it now.`)
    } else {
      io.out(`relying application ${clientId} registered as a public client (PKCE, no secret)`)
    }
    return 0
  } catch (error) {
    if ((error as Error).name === 'InvalidClient' || (error as Error).name === 'ClientAlreadyExists') throw new CliError((error as Error).message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

/** tessera keys rotate-signing: a new ES256 key signs from the next start; the old one stays published. */
export async function keysRotateSigning(io: Io): Promise<number> {
  const ctx = await openContext()
  try {
    const { kid, retired } = await rotateSigningKey(ctx.db, ctx.commands().vault)
    io.out(`new signing key ${kid}; retired ${retired.join(', ') || 'none'} (still published for verification)`)
    io.err('restart the gateway processes one by one to sign with the new key')
    return 0
  } finally {
    await ctx.close()
  }
}

/** tessera tokens unlock SERIAL | release SERIAL | revoke SERIAL --reason lost|stolen|retired|compromised */
export async function tokensLifecycle(io: Io, action: 'unlock' | 'release' | 'revoke', serial: string | undefined, reason: string | undefined): Promise<number> {
  if (!serial) throw new CliError(`tessera tokens ${action} needs a serial number`)
  if (action === 'revoke' && !REVOCATION_REASONS.includes(reason as RevocationReason)) {
    throw new CliError(`--reason must be one of ${REVOCATION_REASONS.join(', ')}`)
  }
  const ctx = await openContext()
  try {
    const state = action === 'unlock' ? await unlockToken(ctx.commands(), { serial }, ctx.meta())
      : action === 'release' ? await releaseToken(ctx.commands(), { serial }, ctx.meta())
      : await revokeToken(ctx.commands(), { serial, reason: reason as RevocationReason }, ctx.meta())
    io.out(action === 'unlock' ? `token ${serial} unlocked`
      : action === 'release' ? `token ${serial} released: it can be claimed from the inventory again`
      : `token ${serial} revoked (${reason}); its seed is destroyed`)
    void state
    return 0
  } catch (error) {
    if (error instanceof TokenError) throw new CliError(error.message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

/** tessera tokens request-software UPN [--show]: an activation code, e-mailed to the user or printed once. */
export async function tokensRequestSoftware(io: Io, upn: string | undefined, show: boolean): Promise<number> {
  if (!upn) throw new CliError('tessera tokens request-software needs a user: tessera tokens request-software alice@example.com [--show]')
  const ctx = await openContext()
  try {
    const user = await findUserByUpn(ctx.db, upn)
    if (!user) throw new CliError(`no user ${upn}`, 1)
    const issued = await requestActivationCode(ctx.commands(), { userId: user.id, by: 'admin', delivery: show ? 'shown' : 'auto',
      activateUrl: `${ctx.config.publicUrl}/activate` }, ctx.meta())
    if (issued.code) {
      io.out(`activation code for ${user.upn} (shown once; it works once, until ${issued.expiresAt.toISOString()}, at ${ctx.config.publicUrl}/activate):`)
      io.out(formatActivationCode(issued.code))
    } else {
      io.out(`activation code ${issued.id} for ${user.upn} sent by email to ${issued.to}; it works once, until ${issued.expiresAt.toISOString()}`)
    }
    return 0
  } catch (error) {
    if (error instanceof ActivationRefused) throw new CliError(error.message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

/** tessera users grant UPN --role admin|auditor */
export async function usersGrant(io: Io, upn: string | undefined, role: string | undefined): Promise<number> {
  if (!upn) throw new CliError('tessera users grant needs a user: tessera users grant alice@example.com --role auditor')
  const ctx = await openContext()
  try {
    const changed = await grantRole(ctx, upn, role as Role, ctx.meta())
    io.out(changed ? `${upn} is now ${role}` : `${upn} already has the ${role} role`)
    return 0
  } catch (error) {
    if ((error as Error).name === 'InvalidUser') throw new CliError((error as Error).message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

/** tessera users reset-password UPN | tessera users delete UPN --yes */
export async function usersAccount(io: Io, change: 'reset-password' | 'delete', upn: string | undefined, yes: boolean): Promise<number> {
  if (!upn) throw new CliError(`tessera users ${change} needs a user: tessera users ${change} alice@example.com${change === 'delete' ? ' --yes' : ''}`)
  if (change === 'delete' && !yes) {
    throw new CliError(`deleting ${upn} signs them out everywhere, for good, and holds their tokens; add --yes to do it`)
  }
  const ctx = await openContext()
  try {
    if (change === 'reset-password') {
      const reset = await resetPassword({ db: ctx.db, store: ctx.store, now: () => new Date() }, { upn }, ctx.meta())
      io.out(`temporary password for ${reset.upn} (shown once; it works until ${reset.expiresAt.toISOString()}, only to choose a new one):`)
      io.out(reset.password)
    } else {
      const deleted = await deleteUser({ db: ctx.db, store: ctx.store, now: () => new Date() }, { upn }, ctx.meta())
      io.out(`deleted ${deleted.upn}${deleted.tokens.length ? `; tokens held until released: ${deleted.tokens.join(', ')}` : ''}`
        + `${deleted.retired.length ? `; software tokens retired with their keys: ${deleted.retired.join(', ')}` : ''}`)
    }
    return 0
  } catch (error) {
    if (error instanceof UserError) throw new CliError(error.message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

function instant(name: string, value: string | undefined): Date | undefined {
  if (!value) return undefined
  const d = parseInstant(value)
  if (!d) throw new CliError(`${name} must be ${INSTANT_EXAMPLE}, not "${value}"`)
  return d
}

/** tessera audit replay --stream ID [--until ISO]: each event and the state after it. */
export async function auditReplay(io: Io, streamId: string | undefined, until: string | undefined): Promise<number> {
  if (!streamId) throw new CliError('tessera audit replay needs --stream, like --stream token-8659623756140')
  const limit = instant('--until', until)
  const ctx = await openContext()
  try {
    const steps = await describedReplay(ctx.db, await resolveStream(ctx.db, streamId), { until: limit })
    if (steps.length === 0) throw new CliError(`stream ${streamId} has no events${limit ? ` by ${limit.toISOString()}` : ''}`, 1)
    for (const step of steps) {
      io.out(`v${step.streamVersion} #${step.position} ${step.recordedAt.toISOString()} ${step.type}: ${step.line}`)
      if (step.state) io.out(`  state: ${JSON.stringify(step.state)}`)
    }
    return 0
  } finally {
    await ctx.close()
  }
}

/** tessera audit export --format jsonl|csv [--from ISO] [--to ISO] [--stream ID] [--type T,...] [--out FILE] */
export async function auditExport(io: Io, options: { format?: string; from?: string; to?: string; stream?: string; type?: string; out?: string }): Promise<number> {
  const format = (options.format ?? 'jsonl') as ExportFormat
  if (format !== 'jsonl' && format !== 'csv') throw new CliError('--format must be jsonl or csv')
  const filter = { from: instant('--from', options.from), to: instant('--to', options.to), streamId: options.stream, types: options.type?.split(',') }
  const ctx = await openContext()
  try {
    const out = options.out ? createWriteStream(options.out) : process.stdout
    await exportEventsTo(ctx.db, filter, format, out).catch((error: Error) => {
      if (out !== process.stdout) out.destroy()
      throw error
    })
    if (options.out) io.err(`exported to ${options.out}`)
    return 0
  } finally {
    await ctx.close()
  }
}

/** tessera api-keys revoke ID */
export async function apiKeysRevoke(io: Io, id: string | undefined): Promise<number> {
  if (!id) throw new CliError('tessera api-keys revoke needs the key id (the part after tsk_)')
  const ctx = await openContext()
  try {
    await revokeApiKey(ctx, id, ctx.meta())
    io.out(`API key ${id} revoked`)
    return 0
  } catch (error) {
    if ((error as Error).name === 'InvalidApiKey') throw new CliError((error as Error).message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}
