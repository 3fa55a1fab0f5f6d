// With REDIS_URL, the provider's short-lived artifacts live in Redis, as Keycloak keeps its sessions in its
// cache: interactions (the sign-in page's state, 30 minutes), authorization codes (60 s), sessions (the
// gateway's session lifetime), grants, access tokens (an hour) and what lasts no longer (replay detection,
// pushed requests). They are a sign-in's writes and reads, and nothing an audit needs. What must last stays in
// PostgreSQL (adapter.ts): relying applications, refresh tokens (14 days) and the grants they stand on (a grant
// with offline_access), so a Redis restart costs sign-ins, never an application's refresh token.
// - Ending a user's sign-ins (a password reset, a disabled or deleted account) happens in a PostgreSQL
//   transaction, which cannot reach Redis (nor can the CLI): it records when (sign-in-ends.ts), and a session,
//   grant or access token of theirs made at or before then is refused when read here. Each is stored with the
//   time it was first made, kept across its updates and, for a session, across a change of id (the UPSERT
//   script); an interaction with the time of its last write. Those are the gateway's clock, the end the
//   database's: they must agree (NTP).
// - A code's grant is looked up at the token endpoint: a code whose grant is gone or ended is refused.
// - Codes are consumed once across processes: SET NX on the code's "consumed" key, in one script with
//   its existence check. A second redemption is refused and the grant's tokens are revoked (RFC 6749 4.1.2).
// - Commands from concurrent requests go out together (ioredis auto-pipelining): fewer round trips.
// - Redis unreachable: each operation falls back to PostgreSQL, and for the next FALLBACK_MS a miss in
//   Redis is looked up in PostgreSQL too, so sign-ins go on (more slowly) while it is down. A session, grant
//   or access token not in Redis is always looked up there too (written during an outage, or before an
//   upgrade that moved them; an offline grant).
import type { Redis } from 'ioredis'
import { errors } from 'oidc-provider'
import type { Adapter, AdapterPayload } from 'oidc-provider'
import type { Db } from '../read-models/database.js'
import { kyselyAdapter, lookable } from './adapter.js'
import { signInEnds } from './sign-in-ends.js'

/** The models kept in Redis when it is configured. */
export const REDIS_MODELS: ReadonlySet<string> = new Set(['Interaction', 'AuthorizationCode', 'ReplayDetection', 'PushedAuthorizationRequest', 'Session', 'Grant', 'AccessToken'])
/**
 * Models that sign a user in for longer than a flow: stored with the time they were first made, refused once the
 * user's sign-ins ended after it, and looked up in PostgreSQL when not in Redis.
 */
const ACCOUNT_MODELS: ReadonlySet<string> = new Set(['Session', 'Grant', 'AccessToken'])
const PREFIX = 'tessera-oidc:'
/**
 * After a fallback, misses of the other models are looked up in PostgreSQL this long: the longest an interaction
 * lives.
 */
const FALLBACK_MS = 30 * 60 * 1000

// KEYS: the payload's key, the key keeping when it was first made. ARGV: the payload, its lifetime in ms, the time
// now in ms. Stored as "<made>|<payload>", <made> the time of its first write, kept by later ones. A session's
// made key is named by its uid, which the provider keeps when it gives the session a new id.
const UPSERT = `
local made = redis.call('GET', KEYS[2])
if not made then made = ARGV[3] end
redis.call('SET', KEYS[2], made, 'PX', ARGV[2])
redis.call('SET', KEYS[1], made .. '|' .. ARGV[1], 'PX', ARGV[2])`

/** A grant applications may refresh tokens on for days: kept in PostgreSQL with its refresh tokens. */
const offline = (payload: AdapterPayload) => {
  const scope = (payload as { openid?: { scope?: unknown } }).openid?.scope
  return typeof scope === 'string' && scope.split(' ').includes('offline_access')
}

// KEYS: the payload's key, its "consumed" key. ARGV: the time. -1: no such code; 0: already consumed; 1: consumed now.
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then ttl = 86400000 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ttl) then return 1 end
return 0`

// KEYS: the uid's key. ARGV: the payload keys' prefix, the consumed keys' prefix. The payload and its consumed time, or nil.
const BY_UID = `
local id = redis.call('GET', KEYS[1])
if not id then return nil end
return {redis.call('GET', ARGV[1] .. id), redis.call('GET', ARGV[2] .. id)}`

/** The scripts, sent once and then run by their SHA (ioredis defineCommand). */
type Scripted = Redis & {
  tesseraUpsert(key: string, madeKey: string, json: string, ms: string, now: string): Promise<unknown>
  tesseraByUid(key: string, payloads: string, consumed: string): Promise<[string | null, string | null] | null>
  tesseraConsume(key: string, consumed: string, now: string): Promise<number>
}

/**
 * Whose sign-in a payload stands on, and when it was issued (ms, the provider's own clock): a session, grant,
 * token (a refresh token in PostgreSQL too, should one be written after the end deleted the others) or code of an
 * account, or an interaction finished with a sign-in. Undefined for what is bound to nobody.
 */
function signInOf(name: string, payload: AdapterPayload): { accountId: string; issued: number | undefined } | undefined {
  const p = payload as { accountId?: unknown; iat?: unknown; result?: { login?: { accountId?: unknown } } }
  const issued = typeof p.iat === 'number' && Number.isFinite(p.iat) ? p.iat * 1000 : undefined
  if (name === 'Interaction') {
    const accountId = p.result?.login?.accountId
    return typeof accountId === 'string' ? { accountId, issued: undefined } : undefined
  }
  if (typeof p.accountId !== 'string') return undefined
  return ACCOUNT_MODELS.has(name) || name === 'AuthorizationCode' || name === 'RefreshToken' ? { accountId: p.accountId, issued } : undefined
}

/** Ids in Redis keys: never one that could name another kind of key (uid:, consumed:); provider ids have no colon. */
const keyable = (id: unknown): id is string => lookable(id) && !id.includes(':')

export function hybridAdapter(db: Db, plain: Redis) {
  plain.defineCommand('tesseraUpsert', { numberOfKeys: 2, lua: UPSERT })
  plain.defineCommand('tesseraByUid', { numberOfKeys: 1, lua: BY_UID })
  plain.defineCommand('tesseraConsume', { numberOfKeys: 2, lua: CONSUME })
  const redis = plain as Scripted
  const Pg = kyselyAdapter(db)
  const ends = signInEnds(db)
  /** Everything of a grant's kept in Redis (every model's), for a code redeemed twice. */
  const revokeGrantInRedis = async (grantId: string) => {
    const set = `${PREFIX}grant:${grantId}`
    const members = await redis.smembers(set)
    const keys = members.flatMap((m) => {
      const colon = m.indexOf(':')
      return [`${PREFIX}${m}`, `${PREFIX}${m.slice(0, colon)}:consumed:${m.slice(colon + 1)}`]
    })
    await redis.del(set, ...keys)
  }
  let pgUntil = 0
  const fallback = () => {
    pgUntil = Date.now() + FALLBACK_MS
  }

  return class HybridAdapter implements Adapter {
    private readonly pg: Adapter
    private readonly inRedis: boolean
    /** Bound to an account beyond one flow (ACCOUNT_MODELS). */
    private readonly lasting: boolean
    private readonly key: string
    private readonly consumedKey: string

    constructor(readonly name: string) {
      this.pg = new Pg(name)
      this.inRedis = REDIS_MODELS.has(name)
      this.lasting = ACCOUNT_MODELS.has(name)
      this.key = `${PREFIX}${name}:`
      this.consumedKey = `${PREFIX}${name}:consumed:`
    }

    /** A Redis operation, or the same one on PostgreSQL when Redis cannot be reached. */
    private async either<T>(onRedis: () => Promise<T>, onPg: () => Promise<T>): Promise<T> {
      if (!this.inRedis) return onPg()
      try {
        return await onRedis()
      } catch (error) {
        if (error instanceof errors.OIDCProviderError) throw error
        fallback()
        return onPg()
      }
    }

    /** What Redis holds, read: the payload (after its "<time>|" prefix, if any) and that time (0: none). */
    private decode(raw: string): { payload: AdapterPayload; made: number } {
      if (raw.startsWith('{')) return { payload: JSON.parse(raw) as AdapterPayload, made: 0 }
      const bar = raw.indexOf('|')
      return { payload: JSON.parse(raw.slice(bar + 1)) as AdapterPayload, made: Number(raw.slice(0, bar)) }
    }

    /**
     * Whether the payload's user's sign-ins ended after it. From Redis, `written` is when it was first made
     * (sessions, grants, access tokens: kept across updates, and for a session across a change of id) or last
     * written (an interaction: its sign-in was finished then); at or before the end, it is refused. From
     * PostgreSQL (written = 0), what was issued in an earlier second than the end is refused; one of the end's own
     * second is not, so that a new sign-in right after the end works.
     */
    private async ended(payload: AdapterPayload, written: number): Promise<boolean> {
      const signIn = signInOf(this.name, payload)
      if (!signIn) return false
      const endedAt = await ends.of(signIn.accountId)
      if (endedAt === 0) return false
      if (written > 0) return written <= endedAt
      return signIn.issued !== undefined && signIn.issued < Math.floor(endedAt / 1000) * 1000
    }

    /**
     * What a lookup in Redis found, as the provider gets it: refused when the user's sign-ins ended after it (and
     * then not looked for in PostgreSQL); a miss looked up in PostgreSQL while an outage's writes may be there,
     * and always for lasting models.
     */
    private async settle(raw: string | null, consumed: string | null, lookup: () => Promise<AdapterPayload | undefined | void>): Promise<AdapterPayload | undefined> {
      if (raw !== null) {
        const { payload, made } = this.decode(raw)
        if (await this.ended(payload, made)) return undefined
        return consumed === null ? payload : { ...payload, consumed: Number(consumed) }
      }
      if (!this.lasting && Date.now() >= pgUntil) return undefined
      return this.fromPg(lookup)
    }

    /** A lookup in PostgreSQL, refused as in Redis when the user's sign-ins ended after it. */
    private async fromPg(lookup: () => Promise<AdapterPayload | undefined | void>): Promise<AdapterPayload | undefined> {
      const found = (await lookup()) ?? undefined
      return found && (await this.ended(found, 0)) ? undefined : found
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.name === 'Grant' && offline(payload)) {
        // To PostgreSQL with its refresh tokens; a copy from before offline_access was added must not be read first.
        await this.pg.upsert(id, payload, expiresIn)
        await redis.del(this.key + id).catch(() => fallback())
        return
      }
      await this.either(async () => {
        const ms = Math.max(1, Math.round((expiresIn || 24 * 3600) * 1000))
        const json = JSON.stringify(payload)
        const now = Date.now()
        const madeKey = `${this.key}made:${this.name === 'Session' && payload.uid ? `uid:${payload.uid}` : id}`
        const writes: Promise<unknown>[] = [this.lasting
          ? redis.tesseraUpsert(this.key + id, madeKey, json, String(ms), String(now))
          // An interaction with the time of its last write: when its sign-in, if any, was finished.
          : redis.set(this.key + id, this.name === 'Interaction' ? `${now}|${json}` : json, 'PX', ms)]
        if (payload.uid) writes.push(redis.set(`${this.key}uid:${payload.uid}`, id, 'PX', ms))
        if (payload.grantId) {
          const grant = `${PREFIX}grant:${payload.grantId}`
          writes.push(redis.sadd(grant, `${this.name}:${id}`), redis.pexpire(grant, ms, 'GT'), redis.pexpire(grant, ms, 'NX'))
        }
        await Promise.all(writes)
      }, () => this.pg.upsert(id, payload, expiresIn))
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!keyable(id)) return undefined
      if (!this.inRedis) return this.fromPg(() => this.pg.find(id))
      let found: (string | null)[]
      try {
        found = await redis.mget(this.key + id, this.consumedKey + id)
      } catch {
        fallback()
        return this.fromPg(() => this.pg.find(id))
      }
      return this.settle(found[0] ?? null, found[1] ?? null, () => this.pg.find(id))
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!keyable(uid)) return undefined
      if (!this.inRedis) return this.fromPg(() => this.pg.findByUid!(uid))
      let found: [string | null, string | null] | null
      try {
        found = await redis.tesseraByUid(`${this.key}uid:${uid}`, this.key, this.consumedKey)
      } catch {
        fallback()
        return this.fromPg(() => this.pg.findByUid!(uid))
      }
      return this.settle(found?.[0] ?? null, found?.[1] ?? null, () => this.pg.findByUid!(uid))
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return (await this.pg.findByUserCode!(userCode)) ?? undefined
    }

    async consume(id: string): Promise<void> {
      if (!keyable(id)) throw new errors.InvalidGrant('grant request is invalid')
      await this.either(async () => {
        const result = Number(await redis.tesseraConsume(this.key + id, this.consumedKey + id, String(Math.floor(Date.now() / 1000))))
        if (result === 1) return
        if (result === -1 && Date.now() < pgUntil) return this.pg.consume(id)
        if (result === 0) {
          const raw = await redis.get(this.key + id)
          const grantId = raw ? this.decode(raw).payload.grantId : undefined
          // The grant's tokens go, wherever they are kept (RFC 6749 4.1.2): access tokens and codes here, refresh
          // tokens in PostgreSQL.
          if (grantId) await Promise.all([revokeGrantInRedis(grantId), this.pg.revokeByGrantId(grantId)])
        }
        throw new errors.InvalidGrant('grant request is invalid: already consumed')
      }, () => this.pg.consume(id))
    }

    async destroy(id: string): Promise<void> {
      if (!keyable(id)) return
      await this.either(async () => {
        await redis.del(this.key + id, this.consumedKey + id)
        // A lasting one may be in PostgreSQL as well (an offline grant, or written during an outage).
        if (this.lasting || Date.now() < pgUntil) await this.pg.destroy(id)
      }, () => this.pg.destroy(id))
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!keyable(grantId)) return
      await this.either(async () => {
        const grant = `${PREFIX}grant:${grantId}`
        const mine = (await redis.smembers(grant)).filter((m) => m.startsWith(`${this.name}:`)).map((m) => m.slice(this.name.length + 1))
        if (mine.length > 0) {
          await redis.del(...mine.flatMap((id) => [this.key + id, this.consumedKey + id]))
          await redis.srem(grant, ...mine.map((id) => `${this.name}:${id}`))
        }
        if (this.lasting || Date.now() < pgUntil) await this.pg.revokeByGrantId(grantId)
      }, () => this.pg.revokeByGrantId(grantId))
    }
  }
}
