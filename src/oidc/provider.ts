// The OpenID provider (oidc-provider), configured for Tessera:
// - authorization code flow with PKCE (S256) for every client, exact redirect URIs, ES256 ID tokens;
// - two levels, requested with acr_values; the ID token carries acr, amr (RFC 8176) and auth_time;
// - a session at `pwd` asked for `mfa` is sent to the interaction again (step-up);
// - registered relying applications are first-party: no consent screen, the grant covers what they ask;
// - client secrets are stored as hashes and compared as hashes.
import { randomUUID, type JsonWebKey } from 'node:crypto'
import Provider, { interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider'
import { compareClientSecret } from '../commands/clients.js'
import type { Db } from '../read-models/database.js'
import { findUser } from '../read-models/users.js'
import { kyselyAdapter } from './adapter.js'
import { hybridAdapter } from './redis-adapter.js'
import type { Redis } from 'ioredis'

/** Levels of assurance a relying application asks for with acr_values. */
export const LEVELS = {
  /** Password only. */
  pwd: 'urn:tessera:loa:pwd',
  /** Password and proof of possession of a sign-in method (a code from it, or sent to it; or a temporary code). */
  mfa: 'urn:tessera:loa:mfa',
  /**
   * Password and a code from a method NIST SP 800-63B-4 does not restrict: a hardware token (not a text
   * message, an e-mail or a temporary code).
   */
  mfaUnrestricted: 'urn:tessera:loa:mfa-unrestricted',
} as const

/** Levels from weakest to strongest: a session at one satisfies a request for any before it. */
const ORDER: readonly Level[] = [LEVELS.pwd, LEVELS.mfa, LEVELS.mfaUnrestricted]
export const levelAtLeast = (reached: unknown, wanted: Level) => ORDER.indexOf(reached as Level) >= ORDER.indexOf(wanted)

export type Level = (typeof LEVELS)[keyof typeof LEVELS]

/**
 * The level the request asks for: the strongest we know of its acr_values and of the acr the claims
 * parameter asks for in the ID token (OpenID Connect Core 5.5.1.1: "value" or "values"); pwd by default.
 */
export function requestedLevel(params: { acr_values?: unknown; claims?: unknown } | undefined): Level {
  const values = typeof params?.acr_values === 'string' ? params.acr_values.split(' ') : []
  values.push(...claimedAcr(params?.claims))
  return values.includes(LEVELS.mfaUnrestricted) ? LEVELS.mfaUnrestricted : values.includes(LEVELS.mfa) ? LEVELS.mfa : LEVELS.pwd
}

function claimedAcr(claims: unknown): string[] {
  let parsed: unknown = claims
  if (typeof claims === 'string') {
    try {
      parsed = JSON.parse(claims)
    } catch {
      return []
    }
  }
  const acr = (parsed as { id_token?: { acr?: { value?: unknown; values?: unknown } | null } } | null)?.id_token?.acr
  if (!acr || typeof acr !== 'object') return []
  const list = Array.isArray(acr.values) ? acr.values : acr.value !== undefined ? [acr.value] : []
  return list.filter((v): v is string => typeof v === 'string')
}

export interface ProviderOptions {
  issuer: string
  db: Db
  signingKeys: JsonWebKey[]
  cookieKeys: string[]
  /** Seconds. */
  sessionTtl?: number
  /** The public URL is https: every cookie is Secure, whether or not a proxy says X-Forwarded-Proto. */
  secureCookies?: boolean
  /** Called with each error page's reference and the library's description of it (for the log). */
  onError?: (details: { reference: string; error: string; description?: string }) => void
  /** Where what a sign-in writes and reads back goes (redis-adapter.ts); without it, everything is in PostgreSQL. */
  redis?: Redis
}

/** Every claim the gateway gives, whichever way it is asked for. */
export const GIVEN_CLAIMS = new Set(['sub', 'acr', 'amr', 'auth_time', 'sid', 'email', 'email_verified', 'name', 'preferred_username'])

/**
 * An essential acr the claims parameter asks for that the gateway knows none of: the sign-in cannot meet it
 * (OpenID Connect Core 5.5.1.1) and ends with unmet_authentication_requirements.
 */
export function unmetEssentialAcr(claims: unknown): boolean {
  let parsed: unknown = claims
  if (typeof claims === 'string') {
    try {
      parsed = JSON.parse(claims)
    } catch {
      return false
    }
  }
  const acr = (parsed as { id_token?: { acr?: { essential?: unknown; value?: unknown; values?: unknown } | null } } | null)?.id_token?.acr
  if (!acr || typeof acr !== 'object' || acr.essential !== true) return false
  const wanted = Array.isArray(acr.values) ? acr.values : acr.value !== undefined ? [acr.value] : []
  return wanted.length > 0 && !wanted.some((v) => ORDER.includes(v as Level))
}

/** The provider's errors in words a person can act on (never the library's own text). */
const ERROR_WORDS: Record<string, string> = {
  invalid_client: 'The application is not registered here.',
  invalid_redirect_uri: 'The application asked to return to an address it has not registered.',
  invalid_request: 'The application sent an incomplete or malformed sign-in request.',
  unsupported_response_type: 'The application asked for a kind of sign-in this gateway does not allow.',
  invalid_scope: 'The application asked for access this gateway does not give.',
  session_not_found: 'This sign-in has expired.',
  server_error: 'Something went wrong on our side.',
}

function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} - Tessera</title><link rel="stylesheet" href="/assets/tessera.css"><link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"></head>
<body><header class="topbar"><span class="brand">Tessera</span></header><main id="main"><div class="card">${body}</div></main></body></html>`
}

/** How long a process keeps an account's claims: a flow reads them twice, a few hundred milliseconds apart. */
export const ACCOUNT_TTL_MS = 2000
const MAX_CACHED_ACCOUNTS = 10_000

/**
 * Accounts as the provider reads them, kept ACCOUNT_TTL_MS. Disabling or deleting an account also ends its
 * provider sessions and grants at once, so a claim read just before changes no decision.
 */
function accountCache(db: Db) {
  const kept = new Map<string, { user: Awaited<ReturnType<typeof findUser>>; until: number }>()
  return {
    async find(sub: string) {
      const now = Date.now()
      const hit = kept.get(sub)
      if (hit && hit.until > now) return hit.user
      const user = await findUser(db, sub)
      if (kept.size >= MAX_CACHED_ACCOUNTS) kept.clear()
      kept.set(sub, { user, until: now + ACCOUNT_TTL_MS })
      return user
    },
  }
}

/** What the provider speaks, whatever keeps its state (the bench's bare provider speaks the same). */
export const PROTOCOL = {
  pkce: { required: () => true },
  acrValues: [LEVELS.pwd, LEVELS.mfa, LEVELS.mfaUnrestricted],
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  // acr, amr and auth_time are claims of the openid scope, so every ID token carries them, whether or
  // not the application asked with acr_values or the claims parameter.
  claims: { sid: null, openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // Only the authorization code flow is allowed to any client: discovery says so.
  responseTypes: ['code'],
  enabledJWA: { idTokenSigningAlgValues: ['ES256'], userinfoSigningAlgValues: ['ES256'] },
} satisfies Configuration

/** The library's interaction policy, with step-up: a session at a lower level than asked for signs in again. */
export function stepUpPolicy() {
  const policy = interactionPolicy.base()
  policy.get('login')!.checks.add(new interactionPolicy.Check('acr_values', 'a stronger authentication is required', (ctx) => {
    const wanted = requestedLevel(ctx.oidc.params)
    if (wanted !== LEVELS.pwd && ctx.oidc.session?.accountId && !levelAtLeast(ctx.oidc.acr, wanted)) return interactionPolicy.Check.REQUEST_PROMPT
    return interactionPolicy.Check.NO_NEED_TO_PROMPT
  }))
  return policy
}

/**
 * The grant of a registered (first-party) application: what it asks for, without a consent screen, and the
 * claims asked for by name (the claims parameter) as far as the gateway gives them.
 */
export async function firstPartyGrant(ctx: KoaContextWithOIDC) {
  const { oidc } = ctx
  const grantId = oidc.result?.consent?.grantId || oidc.session!.grantIdFor(oidc.client!.clientId)
  const grant = grantId ? await oidc.provider.Grant.find(grantId) : new oidc.provider.Grant({ clientId: oidc.client!.clientId, accountId: oidc.session!.accountId! })
  if (!grant) return undefined
  grant.addOIDCScope(String(oidc.params!.scope ?? 'openid'))
  const asked = [...(oidc.requestParamClaims ?? [])].filter((c) => GIVEN_CLAIMS.has(c))
  if (asked.length > 0) grant.addOIDCClaims(asked)
  await grant.save()
  return grant
}

export function createProvider(options: ProviderOptions): Provider {
  const accounts = accountCache(options.db)
  const policy = stepUpPolicy()

  const configuration: Configuration = {
    adapter: options.redis ? hybridAdapter(options.db, options.redis) : kyselyAdapter(options.db),
    clients: [],
    jwks: { keys: options.signingKeys as never[] },
    cookies: {
      keys: options.cookieKeys,
      long: { signed: true, ...(options.secureCookies ? { secure: true } : {}) },
      short: { signed: true, ...(options.secureCookies ? { secure: true } : {}) },
    },
    ...PROTOCOL,
    features: {
      devInteractions: { enabled: false },
      // The claims parameter (OpenID Connect Core 5.5): an essential acr asks for a level (requestedLevel).
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out', `<h1>Sign out</h1><p>Do you want to sign out of Tessera?</p>${form}
            <div class="actions"><button type="submit" form="op.logoutForm">No, stay signed in</button>
            <button type="submit" class="primary" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button></div>`)
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out', '<h1>You have signed out</h1><p>You can close this window.</p>')
        },
      },
    },
    ttl: {
      AuthorizationCode: 60,
      AccessToken: 3600,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 30 * 60,
      // Absolute, like the gateway's own session: what is left of sessionTtl since the sign-in, however
      // often the session is used (a fixed number would be renewed in full at every use).
      Session: (_ctx, session) => {
        const ttl = options.sessionTtl ?? 8 * 3600
        const loginTs = (session as { loginTs?: number }).loginTs
        return loginTs ? Math.max(1, loginTs + ttl - Math.floor(Date.now() / 1000)) : ttl
      },
      Grant: 14 * 24 * 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy },
    async findAccount(_ctx, sub) {
      const user = await accounts.find(sub)
      // A disabled account has no claims to give: its provider session signs nobody in.
      if (!user || user.disabled) return undefined
      return {
        accountId: user.id,
        async claims() {
          return { sub: user.id, email: user.upn, email_verified: false, name: user.display_name, preferred_username: user.upn }
        },
      }
    },
    // Relying applications are registered by an operator: the grant covers what they ask for.
    loadExistingGrant: firstPartyGrant,
    // Errors the provider cannot send back to the application (an unknown client, a redirect URI it does not
    // have): a page in words, with a reference that is in the log with the library's own description.
    async renderError(ctx, out) {
      const reference = randomUUID()
      options.onError?.({ reference, error: out.error, description: out.error_description })
      const client = ctx.oidc?.client
      const app = client ? String((client as { clientName?: string }).clientName ?? client.clientId) : 'the application'
      ctx.type = 'html'
      ctx.body = page('Sign-in problem', `<h1>We couldn't complete the sign-in</h1>
        <p>${escapeHtml(ERROR_WORDS[out.error] ?? 'The application sent a sign-in request we cannot handle.')}</p>
        <p>Go back to ${escapeHtml(app)} and try again. If it happens again, tell your helpdesk.</p>
        <p class="hint">Reference: ${escapeHtml(reference)}</p>`)
    },
    extraParams: [],
    clockTolerance: 5,
  }
  const provider = new Provider(options.issuer, configuration)
  if (options.secureCookies) {
    // The cookies module refuses a Secure cookie on a connection it believes is plain http (TLS ends at
    // a proxy in front): under an https public URL every request came through https.
    provider.use(async (ctx, next) => {
      ;(ctx.cookies as { secure?: boolean }).secure = true
      await next()
    })
  }
  // Secrets are stored hashed (commands/clients.ts), so compare the hash of what was presented.
  provider.Client.prototype.compareClientSecret = async function compare(this: { clientSecret?: string }, actual: string) {
    return compareClientSecret(actual, this.clientSecret)
  }
  return provider
}
