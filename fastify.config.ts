// Environment -> typed configuration, and the Fastify server options that follow from it.
// Pure: reads only the environment object it is given.
import type { FastifyServerOptions } from 'fastify'
import { randomUUID } from 'node:crypto'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface AppConfig {
  port: number
  host: string
  publicUrl: string
  /** External PostgreSQL; when absent the gateway runs the embedded one in dataDir. */
  databaseUrl: string | null
  redisUrl: string | null
  dataDir: string
  logLevel: LogLevel
  /**
   * Behind a reverse proxy: which hops to trust for the client's address (X-Forwarded-For), so rate
   * limits and events see the user's address, not the proxy's. Off by default.
   */
  trustProxy: boolean | string | number
  /** Seed encryption: see src/crypto/keyring.ts. Null: the keyring file in dataDir. */
  masterKey: string | null
  previousMasterKeys: string[]
  fingerprintKey: string | null
  /** Session cookie key (32 bytes, base64); every gateway process must share it. Null: a file in dataDir. */
  sessionKey: string | null
  /** An upstream OpenID provider users may sign in with (identity brokering); null when not configured. */
  upstream: UpstreamConfig | null
  /** Where sent codes go (methods/sent-code): providers in failover order per channel, and the gateway-wide send budgets. */
  delivery: DeliveryConfig
  /** The organisation's name, as authenticator apps show it beside the account (the otpauth issuer). */
  organization: string
  /** The largest inventory upload (API and admin page) in bytes; a larger one is refused before anything is imported. */
  importMaxBytes: number
  /** /metrics on the gateway's listener, to a caller with this bearer token; null: not there. */
  metricsToken: string | null
  /** /metrics on a listener of its own at this port (HOST); null: none. */
  metricsPort: number | null
}

export type ProviderConfig =
  | { name: string; type: 'smtp'; url: string; from: string }
  | { name: string; type: 'smpp'; url: string; source?: string }
  /** Kannel's sendsms interface (a preset of the generic HTTP template). */
  | { name: string; type: 'kannel'; url: string; username: string; password: string; from?: string; dlrUrl?: string }
  /** Any HTTP SMS gateway: {phone} and {text} are filled in (URL-encoded in the URL, JSON-escaped in a JSON body). */
  | { name: string; type: 'http'; url: string; method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; success?: string }

export interface DeliveryConfig {
  providers: ProviderConfig[]
  /** Codes sent per source address in an hour, whoever they are for. */
  sendsPerAddressPerHour: number
  /** Codes sent by the whole gateway in a minute (a guard against SMS pumping fraud). */
  sendsPerMinute: number
  /** How long a provider may take to accept a message before the next try. */
  timeoutMs: number
}

export interface UpstreamConfig {
  issuer: string
  clientId: string
  clientSecret: string
  /** Shown on the button: "Sign in with <name>". */
  name: string
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

function optional(env: NodeJS.ProcessEnv, name: string): string | null {
  const value = env[name]?.trim()
  return value ? value : null
}

function url(name: string, value: string, protocols: string[]): string {
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw new ConfigError(`${name} is not a URL: expected ${protocols.join(' or ')}://...`)
  }
  if (!protocols.includes(parsed.protocol.replace(/:$/, ''))) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, not ${parsed.protocol.replace(/:$/, '')}`)
  }
  return value
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const portText = optional(env, 'PORT') ?? '3000'
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`PORT must be a whole number from 0 to 65535, not "${portText}"`)
  }
  const host = optional(env, 'HOST') ?? '127.0.0.1'
  const logLevel = (optional(env, 'LOG_LEVEL') ?? 'info') as LogLevel
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, not "${logLevel}"`)
  }
  const databaseUrl = optional(env, 'DATABASE_URL')
  const redisUrl = optional(env, 'REDIS_URL')
  const publicUrl = optional(env, 'PUBLIC_URL') ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  return {
    port,
    host,
    publicUrl: url('PUBLIC_URL', publicUrl, ['http', 'https']).replace(/\/+$/, ''),
    databaseUrl: databaseUrl && url('DATABASE_URL', databaseUrl, ['postgres', 'postgresql']),
    redisUrl: redisUrl && url('REDIS_URL', redisUrl, ['redis', 'rediss']),
    dataDir: optional(env, 'TESSERA_DATA_DIR') ?? '.tessera',
    logLevel,
    trustProxy: trustProxy(optional(env, 'TRUST_PROXY')),
    masterKey: optional(env, 'TESSERA_MASTER_KEY'),
    previousMasterKeys: (optional(env, 'TESSERA_PREVIOUS_MASTER_KEYS') ?? '').split(',').map((k) => k.trim()).filter(Boolean),
    fingerprintKey: optional(env, 'TESSERA_FINGERPRINT_KEY'),
    sessionKey: optional(env, 'TESSERA_SESSION_KEY'),
    upstream: upstreamConfig(env),
    delivery: deliveryConfig(env),
    organization: organization(optional(env, 'TESSERA_ORGANIZATION')),
    importMaxBytes: importMaxBytes(optional(env, 'TESSERA_IMPORT_MAX_MB')),
    metricsToken: metricsToken(optional(env, 'TESSERA_METRICS_TOKEN')),
    metricsPort: metricsPort(optional(env, 'TESSERA_METRICS_PORT')),
  }
}

function metricsToken(value: string | null): string | null {
  if (value === null) return null
  if (value.length < 32 || !/^[\x21-\x7e]+$/.test(value)) throw new ConfigError('TESSERA_METRICS_TOKEN must be at least 32 printable characters without spaces (openssl rand -hex 32)')
  return value
}

function metricsPort(value: string | null): number | null {
  if (value === null) return null
  const port = Number(value)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`TESSERA_METRICS_PORT must be a port from 1 to 65535, not "${value.slice(0, 20)}"`)
  return port
}

function importMaxBytes(value: string | null): number {
  if (value === null) return 256 * 1024 * 1024
  const mb = Number(value)
  if (!Number.isInteger(mb) || mb < 1 || mb > 4096) throw new ConfigError(`TESSERA_IMPORT_MAX_MB must be a whole number from 1 to 4096, not "${value.slice(0, 20)}"`)
  return mb * 1024 * 1024
}

function organization(value: string | null): string {
  if (value === null) return 'Tessera'
  // The otpauth label is "issuer:account": a colon would split it elsewhere.
  if (value.length > 64 || /[:\p{Cc}\p{Cf}]/u.test(value)) throw new ConfigError('TESSERA_ORGANIZATION must be 1 to 64 printable characters without a colon')
  return value
}

function trustProxy(value: string | null): boolean | string | number {
  if (!value || value === 'false') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  return value // addresses or CIDR ranges, comma-separated
}

const PROVIDER_TYPES = ['smtp', 'smpp', 'kannel', 'http'] as const

function deliveryConfig(env: NodeJS.ProcessEnv): DeliveryConfig {
  const raw = optional(env, 'TESSERA_DELIVERY_PROVIDERS')
  let providers: ProviderConfig[] = []
  if (raw) {
    try {
      providers = JSON.parse(raw)
    } catch {
      throw new ConfigError('TESSERA_DELIVERY_PROVIDERS must be a JSON list of providers, like [{"name":"mail","type":"smtp","url":"smtp://127.0.0.1:25","from":"no-reply@example.com"}]')
    }
    if (!Array.isArray(providers)) throw new ConfigError('TESSERA_DELIVERY_PROVIDERS must be a JSON list')
    for (const [i, p] of providers.entries()) {
      if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || !p.name || typeof p.url !== 'string' || !PROVIDER_TYPES.includes(p.type)) {
        throw new ConfigError(`TESSERA_DELIVERY_PROVIDERS[${i}] needs a name, a url and a type (${PROVIDER_TYPES.join(', ')})`)
      }
      const schemes = { smtp: ['smtp:', 'smtps:'], smpp: ['smpp:', 'ssmpp:'], kannel: ['http:', 'https:'], http: ['http:', 'https:'] }[p.type as 'smtp']
      // The template's placeholders are not part of a URL until filled in.
      const parsed = URL.canParse(p.url.replace(/\{(phone|text|reference)\}/g, 'x')) ? new URL(p.url.replace(/\{(phone|text|reference)\}/g, 'x')) : null
      if (!parsed || !schemes.includes(parsed.protocol)) throw new ConfigError(`TESSERA_DELIVERY_PROVIDERS[${i}] (${p.type}) needs a url starting ${schemes.join(' or ')}`)
      if (p.type === 'smtp' && typeof p.from !== 'string') throw new ConfigError(`TESSERA_DELIVERY_PROVIDERS[${i}] (smtp) needs "from"`)
      if (p.type === 'kannel' && (typeof p.username !== 'string' || typeof p.password !== 'string')) throw new ConfigError(`TESSERA_DELIVERY_PROVIDERS[${i}] (kannel) needs "username" and "password"`)
    }
    if (new Set(providers.map((p) => p.name)).size !== providers.length) throw new ConfigError('TESSERA_DELIVERY_PROVIDERS: each provider needs its own name')
  }
  const count = (name: string, fallback: number) => {
    const value = optional(env, name)
    if (value === null) return fallback
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new ConfigError(`${name} must be a whole number above 0`)
    return Number(value)
  }
  return {
    providers,
    sendsPerAddressPerHour: count('TESSERA_SENDS_PER_ADDRESS_PER_HOUR', 30),
    sendsPerMinute: count('TESSERA_SENDS_PER_MINUTE', 600),
    // Well under the worker's 30-second lease, so that a job is never worked by two processes at once.
    timeoutMs: Math.min(count('TESSERA_DELIVERY_TIMEOUT_MS', 3000), 10_000),
  }
}

function upstreamConfig(env: NodeJS.ProcessEnv): UpstreamConfig | null {
  const issuer = optional(env, 'TESSERA_UPSTREAM_ISSUER')
  const clientId = optional(env, 'TESSERA_UPSTREAM_CLIENT_ID')
  const clientSecret = optional(env, 'TESSERA_UPSTREAM_CLIENT_SECRET')
  if (!issuer && !clientId && !clientSecret) return null
  if (!issuer || !clientId || !clientSecret) {
    throw new ConfigError('an upstream provider needs TESSERA_UPSTREAM_ISSUER, TESSERA_UPSTREAM_CLIENT_ID and TESSERA_UPSTREAM_CLIENT_SECRET together')
  }
  return {
    issuer: url('TESSERA_UPSTREAM_ISSUER', issuer, ['http', 'https']).replace(/\/+$/, ''),
    clientId,
    clientSecret,
    name: optional(env, 'TESSERA_UPSTREAM_NAME') ?? new URL(issuer).hostname,
  }
}

/** Fastify options: JSON logs with a request id, and no credential in any log line. */
export function serverOptions(config: AppConfig): FastifyServerOptions {
  return {
    logger: {
      level: config.logLevel,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          '*.password',
          '*.secret',
          '*.seed',
          '*.code',
        ],
        censor: '[redacted]',
      },
      // The path only: a query string can carry an authorization code or an id_token_hint.
      serializers: {
        req: (req: { method: string; url: string; hostname?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: req.method, url: req.url.split('?')[0], hostname: req.hostname, remoteAddress: req.ip, remotePort: req.socket?.remotePort,
        }),
      },
    },
    // A caller's X-Request-Id is kept only when it is a plain token, so it cannot forge log lines.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : randomUUID()
    },
    return503OnClosing: true,
    trustProxy: typeof config.trustProxy === 'number'
      ? ((hops: number) => (_address: string, hop: number) => hop < hops)(config.trustProxy)
      : config.trustProxy,
    forceCloseConnections: 'idle',
    bodyLimit: 1024 * 1024,
    // A list where the schema wants one value is bad input (400), not its first element: Fastify's default
    // coerceTypes 'array' would take ["x"] for "x". Numbers in query strings are still read as numbers.
    ajv: { customOptions: { coerceTypes: true } },
  }
}
