// Remote services: configured by an admin (API, page, CLI), one stream each, their secrets sealed by the vault
// beside the row; and, per process, one client per service (a kept-alive mutual TLS agent for VIP) with its
// circuit breaker. A change of configuration reaches every process within CLIENT_TTL_MS.
import { X509Certificate, createHash } from 'node:crypto'
import { TLSSocket, createSecureContext } from 'node:tls'
import { sql } from 'kysely'
import { appendWithProjections } from '../../commands/append.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from '../../commands/context.js'
import { WrongExpectedVersion } from '../../event-store/errors.js'
import type { EventMetadata } from '../../event-store/types.js'
import type { Executor } from '../../read-models/database.js'
import type { RemoteAnswer } from './answer.js'
import { Breaker } from './breaker.js'
import { remoteServiceFromRow, type RemoteServicesTable } from './projection.js'
import { radiusValidate } from './radius.js'
import {
  decideRemoteService, initialRemoteService, RemoteServiceError, remoteServiceStream, UnknownRemoteService,
  type RadiusSettings, type RemoteServiceCommand, type RemoteServiceState, type RemoteSettings, type VipSettings,
} from './service.js'
import { createVipClient } from './vip.js'

/** The vault's additional data for a service's secrets: they open for that service only. */
const secretsAad = (id: string) => `remote-service:${id}`

type Secrets = { protocol: 'vip'; pkcs12: string; passphrase: string } | { protocol: 'radius'; secret: string }

export class InvalidRemoteService extends RemoteServiceError {
  override name = 'InvalidRemoteService'
}

const ID = /^[a-z0-9][a-z0-9-]{0,39}$/
const NAME = /^[^\p{Cc}\p{Cf}]{1,80}$/u
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\d{1,3}(?:\.\d{1,3}){3}$|^\[[0-9A-Fa-f:.]+\]$/
export const DEFAULT_TIMEOUT_SECONDS = 5
export const DEFAULT_CODE_LIFETIME_SECONDS = 600
/** The shortest wait for one RADIUS attempt: a refusal's usual delay (1 s) and a margin. */
export const MIN_RADIUS_ATTEMPT_MS = 1200

/** What an admin gives to configure a service; a secret left out keeps the one the service has. */
export type RemoteServiceInput = {
  id: string
  name: string
  /** How long a code stays valid at the service (remembered that long once accepted). */
  codeLifetimeSeconds?: number
  /** The whole check's budget, 1 to 30 s. */
  timeoutSeconds?: number
} & (
  | { protocol: 'vip'; url: string; pkcs12?: Buffer; passphrase?: string; caPem?: string | null }
  | { protocol: 'radius'; servers: string[]; secret?: string; retries?: number; nasIdentifier?: string }
)

function whole(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback
  const n = typeof value === 'string' && /^\d{1,6}$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new InvalidRemoteService(`${field} must be a whole number from ${min} to ${max}.`)
  return n
}

/** A server as "host" or "host:port" (1812 by default); an IPv6 address in brackets. */
export function parseServer(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(text.trim())
  const port = m?.[2] === undefined ? 1812 : Number(m[2])
  if (!m || !HOST.test(m[1]!) || port < 1 || port > 65535) throw new InvalidRemoteService(`"${text.slice(0, 80)}" is not a RADIUS server: give host or host:port.`)
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
}

/** Our certificate in the PKCS#12 file, opened with its password: its subject and expiry, or a clear refusal. */
export function pkcs12Certificate(pkcs12: Buffer, passphrase: string): { subject: string; notAfter: string } {
  let certificate
  try {
    const socket = new TLSSocket(null as never, { secureContext: createSecureContext({ pfx: pkcs12, passphrase }) })
    certificate = socket.getCertificate()
    socket.destroy()
  } catch {
    throw new InvalidRemoteService('The PKCS#12 file does not open with this password, or is not a PKCS#12 file with a certificate and its key.')
  }
  if (!certificate || !('raw' in certificate)) throw new InvalidRemoteService('The PKCS#12 file holds no client certificate.')
  const x509 = new X509Certificate(certificate.raw)
  return { subject: x509.subject.replace(/\n/g, ', '), notAfter: new Date(x509.validTo).toISOString() }
}

function checkCa(pem: string): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
  if (!blocks || blocks.length > 20) throw new InvalidRemoteService('The CA certificate must be PEM ("-----BEGIN CERTIFICATE-----").')
  try {
    for (const b of blocks) new X509Certificate(b)
  } catch {
    throw new InvalidRemoteService('The CA certificate is not a certificate that can be read.')
  }
  return blocks.join('\n') + '\n'
}

/** The settings and sealed secrets an input makes, checked; the current secrets fill in what it leaves out. */
function configuration(input: RemoteServiceInput, current: () => Secrets | null, currentSettings: RemoteSettings | null): { settings: RemoteSettings; secrets: Secrets; lifetime: number } {
  if (typeof input.name !== 'string' || !NAME.test(input.name.trim())) throw new InvalidRemoteService('Give the service a name of 1 to 80 characters.')
  const lifetime = whole(input.codeLifetimeSeconds, 'The code lifetime (seconds)', 30, 86_400, DEFAULT_CODE_LIFETIME_SECONDS)
  const timeoutMs = whole(input.timeoutSeconds, 'The timeout (seconds)', 1, 30, DEFAULT_TIMEOUT_SECONDS) * 1000
  if (input.protocol === 'vip') {
    let url: URL
    try {
      url = new URL(String(input.url))
    } catch {
      throw new InvalidRemoteService('The URL of the VIP service must be a full https:// address.')
    }
    if (url.protocol !== 'https:' || url.username || url.password) throw new InvalidRemoteService('The URL of the VIP service must be a full https:// address.')
    const kept = input.pkcs12 ? null : current()
    const previous = kept?.protocol === 'vip' ? kept : null
    if (!input.pkcs12 && !previous) throw new InvalidRemoteService('Give the client certificate: the PKCS#12 file the VIP service issued, and its password.')
    const pkcs12 = input.pkcs12 ?? Buffer.from(previous!.pkcs12, 'base64')
    const passphrase = input.passphrase ?? (input.pkcs12 ? '' : previous!.passphrase)
    if (typeof passphrase !== 'string' || passphrase.length > 1024) throw new InvalidRemoteService('The PKCS#12 password must be text.')
    if (pkcs12.length > 64 * 1024) throw new InvalidRemoteService('The PKCS#12 file is over 64 KB: it is not a client certificate.')
    const certificate = pkcs12Certificate(pkcs12, passphrase)
    // A CA left out is kept (an edit must not widen trust to the system's roots); null or '' clears it.
    const keptCa = currentSettings?.protocol === 'vip' ? currentSettings.caPem : null
    const caPem = input.caPem === undefined ? keptCa : input.caPem ? checkCa(String(input.caPem)) : null
    const settings: VipSettings = { protocol: 'vip', url: url.toString(), caPem, certificate, timeoutMs }
    return { settings, secrets: { protocol: 'vip', pkcs12: pkcs12.toString('base64'), passphrase }, lifetime }
  }
  if (input.protocol === 'radius') {
    if (!Array.isArray(input.servers) || input.servers.length === 0 || input.servers.length > 5 || input.servers.some((s) => typeof s !== 'string')) {
      throw new InvalidRemoteService('Give 1 to 5 RADIUS servers, in the order to try them (host or host:port).')
    }
    const servers = input.servers.map(parseServer)
    const kept = input.secret === undefined ? current() : null
    const secret = input.secret ?? (kept?.protocol === 'radius' ? kept.secret : undefined)
    if (typeof secret !== 'string' || secret.length < 1 || secret.length > 128 || /[\p{Cc}]/u.test(secret)) {
      throw new InvalidRemoteService('Give the RADIUS shared secret: 1 to 128 characters, the same as in the servers\' client entry.')
    }
    const retries = whole(input.retries, 'Retries', 0, 5, 1)
    // Each attempt must outlast a refusal's delay (FreeRADIUS waits reject_delay, 1 s by default, before an
    // Access-Reject): a budget split thinner would turn every wrong code into "no answer".
    const attempt = Math.floor(timeoutMs / (servers.length * (retries + 1)))
    if (attempt < MIN_RADIUS_ATTEMPT_MS) {
      throw new InvalidRemoteService(`With ${servers.length} ${servers.length === 1 ? 'server' : 'servers'} and ${retries} ${retries === 1 ? 'retry' : 'retries'}, a timeout of ${timeoutMs / 1000} s leaves each attempt ${(attempt / 1000).toFixed(2)} s; RADIUS servers wait about 1 s before a refusal. Give a timeout of at least ${Math.ceil(servers.length * (retries + 1) * MIN_RADIUS_ATTEMPT_MS / 1000)} s, or fewer retries or servers.`)
    }
    const nasIdentifier = input.nasIdentifier ?? 'tessera'
    if (typeof nasIdentifier !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(nasIdentifier)) throw new InvalidRemoteService('The NAS-Identifier must be 1 to 64 printable characters.')
    const settings: RadiusSettings = { protocol: 'radius', servers, timeoutMs, retries, nasIdentifier }
    return { settings, secrets: { protocol: 'radius', secret }, lifetime }
  }
  throw new InvalidRemoteService('The protocol must be vip or radius.')
}

export async function loadRemoteService(db: Executor, id: string): Promise<RemoteServiceState> {
  const row = await db.selectFrom('remote_services').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? remoteServiceFromRow(row as RemoteServicesTable) : initialRemoteService(id)
}

export async function listRemoteServices(db: Executor): Promise<(RemoteServiceState & { credentials: number })[]> {
  const rows = await sql<RemoteServicesTable & { credentials: string }>`select s.*,
      (select count(*) from tokens t where t.remote_service = s.id and t.status <> 'revoked') as credentials
    from remote_services s where s.exists order by s.name, s.id`.execute(db)
  return rows.rows.map((r) => ({ ...remoteServiceFromRow(r), credentials: Number(r.credentials) }))
}

async function openSecrets(ctx: Pick<CommandContext, 'db' | 'vault'>, id: string): Promise<Secrets | null> {
  const row = await ctx.db.selectFrom('remote_service_secrets').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? openSealed(ctx, id, row) : null
}

function openSealed(ctx: Pick<CommandContext, 'vault'>, id: string, row: { key_id: string; nonce: Buffer; ciphertext: Buffer }): Secrets {
  const plain = ctx.vault.open(secretsAad(id), { keyId: row.key_id, nonce: row.nonce, ciphertext: row.ciphertext })
  try {
    return JSON.parse(plain.toString('utf8')) as Secrets
  } finally {
    plain.fill(0)
  }
}

async function runService(ctx: Pick<CommandContext, 'db' | 'store'>, id: string, command: (state: RemoteServiceState, trx: Executor) => Promise<RemoteServiceCommand>,
  meta: EventMetadata, before?: (trx: Executor) => Promise<void>): Promise<RemoteServiceState> {
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.db.transaction().execute(async (trx) => {
        const state = await loadRemoteService(trx, id)
        const events = decideRemoteService(state, await command(state, trx))
        if (events.length === 0) return
        await before?.(trx)
        await appendWithProjections({ db: trx as never, store: ctx.store, deferCommit: true }, remoteServiceStream(id), state.version === 0 ? 'no-stream' : state.version, events, meta)
      })
      ctx.store.committed()
      forgetClient(id, { resetBreaker: true })
      return loadRemoteService(ctx.db, id)
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

/**
 * Creates or changes a service: the configuration checked (the PKCS#12 opened with its password, the CA read,
 * the servers parsed), its secrets sealed, and RemoteServiceConfigured with their fingerprint, in one transaction.
 */
export async function configureRemoteService(ctx: CommandContext, input: RemoteServiceInput, meta: EventMetadata): Promise<RemoteServiceState> {
  if (typeof input.id !== 'string' || !ID.test(input.id)) throw new InvalidRemoteService('The service id must be 1 to 40 lower-case letters, digits and dashes.')
  const existing = await loadRemoteService(ctx.db, input.id)
  // The current secrets are opened only when the change keeps one of them.
  const sealedNow = existing.exists ? await ctx.db.selectFrom('remote_service_secrets').selectAll().where('id', '=', input.id).executeTakeFirst() : undefined
  const current = () => {
    if (!sealedNow) return null
    try {
      return openSealed(ctx, input.id, sealedNow)
    } catch {
      throw new InvalidRemoteService('The service\'s current secrets cannot be opened (its master key is gone?): give them again.')
    }
  }
  const { settings, secrets, lifetime } = configuration(input, current, existing.exists ? existing.settings : null)
  const plain = Buffer.from(JSON.stringify(secrets), 'utf8')
  const fingerprint = createHash('sha256').update(ctx.vault.keyedHash('remote-service-secret', plain.toString('base64'))).digest('hex').slice(0, 32)
  const sealed = ctx.vault.seal(secretsAad(input.id), plain)
  plain.fill(0)
  return runService(ctx, input.id, async () => ({ type: 'ConfigureRemoteService', data: { name: input.name.trim(), settings, codeLifetimeSeconds: lifetime, secretFingerprint: fingerprint } }), meta,
    async (trx) => {
      await sql`insert into remote_service_secrets (id, key_id, nonce, ciphertext) values (${input.id}, ${sealed.keyId}, ${sealed.nonce}, ${sealed.ciphertext})
        on conflict (id) do update set key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, created_at = now()`.execute(trx)
    })
}

/** Removes a service no live credential uses; its secrets are destroyed with it. */
export async function removeRemoteService(ctx: CommandContext, input: { id: string }, meta: EventMetadata): Promise<RemoteServiceState> {
  if (typeof input.id !== 'string' || !ID.test(input.id)) throw new UnknownRemoteService(String(input.id).slice(0, 40))
  return runService(ctx, input.id, async (_, trx) => {
    // Under the lock a credential's assignment takes, so none is given to it while it goes.
    await sql`select pg_advisory_xact_lock(hashtext(${`remote-service:${input.id}`}))`.execute(trx)
    const inUse = await sql<{ n: string }>`select count(*) as n from tokens where remote_service = ${input.id} and status <> 'revoked'`.execute(trx)
    return { type: 'RemoveRemoteService', data: { inUse: Number(inUse.rows[0]!.n) } }
  }, meta, async (trx) => {
    await sql`delete from remote_service_secrets where id = ${input.id}`.execute(trx)
  })
}

/** One process's way to a service: its protocol client, its breaker, and when it was read. */
export interface RemoteClient {
  service: RemoteServiceState
  breaker: Breaker
  validate(credential: string, code: string): Promise<RemoteAnswer>
  test(): Promise<{ ok: boolean; message: string }>
  close(): void
}

/** How long a process keeps a service's client before reading its configuration again. */
export const CLIENT_TTL_MS = 5000
const clients = new Map<string, { client: RemoteClient; readAt: number; version: number }>()
/** The breaker outlives a re-read client: a service that keeps failing stays paused across re-reads. */
const breakers = new Map<string, Breaker>()

/** Builds in flight, so that two requests that miss at once make one client. */
const building = new Map<string, Promise<RemoteClient | null>>()

/**
 * This process stops using a service's client: a new one is made at the next use. The old one closes
 * after CLIENT_TTL_MS, so the checks still running on it finish. A changed configuration starts a new breaker.
 */
function forgetClient(id: string, options: { now?: boolean; resetBreaker?: boolean } = {}): void {
  const held = clients.get(id)
  clients.delete(id)
  if (options.resetBreaker) breakers.delete(id)
  if (!held) return
  if (options.now) held.client.close()
  else setTimeout(() => held.client.close(), CLIENT_TTL_MS).unref()
}

/** Every client this process holds, closed (the gateway's shutdown). */
export function closeRemoteClients(): void {
  for (const id of [...clients.keys()]) forgetClient(id, { now: true })
}

function makeClient(service: RemoteServiceState, secrets: Secrets): RemoteClient {
  const settings = service.settings!
  let breaker = breakers.get(service.id)
  if (!breaker) breakers.set(service.id, (breaker = new Breaker()))
  if (settings.protocol === 'vip' && secrets.protocol === 'vip') {
    const vip = createVipClient({ url: settings.url, pfx: Buffer.from(secrets.pkcs12, 'base64'), passphrase: secrets.passphrase,
      ca: settings.caPem ? Buffer.from(settings.caPem) : null, timeoutMs: settings.timeoutMs })
    return { service, breaker, validate: (credential, code) => vip.validate(credential, code), test: () => vip.testConnection(), close: () => vip.close() }
  }
  if (settings.protocol === 'radius' && secrets.protocol === 'radius') {
    const attempts = settings.servers.length * (settings.retries + 1)
    const options = { servers: settings.servers.map((s) => ({ ...s, secret: secrets.secret })), retries: settings.retries, nasIdentifier: settings.nasIdentifier,
      timeoutMs: Math.max(250, Math.floor(settings.timeoutMs / attempts)) }
    return {
      service, breaker,
      validate: (credential, code) => radiusValidate(options, credential, code),
      // Any answer that passes its checks, an Access-Reject for a user nobody has, shows the server and the secret work.
      test: async () => {
        const answer = await radiusValidate(options, 'tessera-connection-test', '000000')
        return answer.result === 'unavailable' ? { ok: false, message: answer.message } : { ok: true, message: `Connected: the RADIUS server answered (${answer.reason}).` }
      },
      close: () => {},
    }
  }
  throw new Error(`remote service ${service.id}: its secrets are not for its protocol`)
}

/** The client of a live service, kept CLIENT_TTL_MS; null when the service does not exist (any more). */
export async function remoteClient(ctx: Pick<CommandContext, 'db' | 'vault'>, id: string): Promise<RemoteClient | null> {
  const held = clients.get(id)
  if (held && Date.now() - held.readAt < CLIENT_TTL_MS) return held.client
  let pending = building.get(id)
  if (!pending) {
    pending = (async () => {
      const service = await loadRemoteService(ctx.db, id)
      const current = clients.get(id)
      if (current && current.version === service.version && service.exists) {
        current.readAt = Date.now()
        return current.client
      }
      // Changed on another process: a new client, and a new breaker for the new configuration.
      if (current) forgetClient(id, { resetBreaker: true })
      if (!service.exists || !service.settings) return null
      const secrets = await openSecrets(ctx, id)
      if (!secrets) return null
      const client = makeClient(service, secrets)
      clients.set(id, { client, readAt: Date.now(), version: service.version })
      return client
    })().finally(() => building.delete(id))
    building.set(id, pending)
  }
  return pending
}

/** Test connection: what the service answered, in words (certificate refused, not trusted, timeout, wrong URL). */
export async function testRemoteService(ctx: Pick<CommandContext, 'db' | 'vault'>, id: string): Promise<{ ok: boolean; message: string }> {
  const client = await remoteClient(ctx, id)
  if (!client) throw new UnknownRemoteService(id)
  return client.test()
}
