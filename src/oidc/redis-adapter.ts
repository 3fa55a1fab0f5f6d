// With REDIS_URL, the provider's short-lived artifacts live in Redis, as Keycloak keeps its sessions in its
// cache: interactions (the sign-in page's state, 30 minutes), authorization codes (60 s), sessions (the
// gateway's session lifetime), grants, access tokens (an hour) and what lasts no longer (replay detection,
// pushed requests). They are a sign-in's writes and reads, and nothing an audit needs. What must last stays in
// PostgreSQL (adapter.ts): relying applications, refresh tokens (14 days) and the grants they stand on (a grant
// with offline_access), so a Redis restart costs sign-ins, never an application's refresh token.
// - Ending a user's sign-ins (a password reset, a disabled or deleted account) happens in a PostgreSQL
//   transaction, which cannot reach Redis (nor can the CLI): it records when (sign-in-ends.ts), and a session,
//   grant or access token of theirs made at or before then is refused when read here. Each is stored with the
//   time it was first made, kept across its updates (the UPSERT script). That time and the end's are both
//   wall-clock times of the processes that wrote them.
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

// KEYS: the payload's key. ARGV: the payload, its lifetime in ms, the time now in ms. Stored as "<made>|<payload>",
// <made> the time of its first write, kept by later ones.
const UPSERT = `
local made = ARGV[3]
local old = redis.call('GET', KEYS[1])
if old then
  local bar = string.find(old, '|', 1, true)
  if bar then made = string.sub(old, 1, bar - 1) end
end
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
  tesseraUpsert(key: string, json: string, ms: string, now: string): Promise<unknown>
  tesseraByUid(key: string, payloads: string, consumed: string): Promise<[string | null, string | null] | null>
  tesseraConsume(key: string, consumed: string, now: string): Promise<number>
}

export function hybridAdapter(db: Db, plain: Redis) {
  plain.defineCommand('tesseraUpsert', { numberOfKeys: 1, lua: UPSERT })
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

    /** What Redis holds, read: the payload (after its "<made>|" prefix, if any) and when it was made (0: unknown). */
    private decode(raw: string): { payload: AdapterPayload; made: number } {
      if (raw.startsWith('{')) return { payload: JSON.parse(raw) as AdapterPayload, made: 0 }
      const bar = raw.indexOf('|')
      return { payload: JSON.parse(raw.slice(bar + 1)) as AdapterPayload, made: Number(raw.slice(0, bar)) }
    }

    /** A payload read from Redis, or undefined when there is none or its user's sign-ins ended since it was made. */
    private async read(raw: string | null, consumed: string | null): Promise<AdapterPayload | undefined> {
      if (raw === null) return undefined
      const { payload, made } = this.decode(raw)
      if (this.lasting && payload.accountId) {
        const endedAt = await ends.of(payload.accountId)
        if (endedAt > 0 && !(made > endedAt)) return undefined
      }
      return consumed === null ? payload : { ...payload, consumed: Number(consumed) }
    }

    /** A miss in Redis, looked up in PostgreSQL while an outage's writes may be there (always for lasting models). */
    private async orPg(found: AdapterPayload | undefined, lookup: () => Promise<AdapterPayload | undefined | void>): Promise<AdapterPayload | undefined> {
      if (found || (!this.lasting && Date.now() >= pgUntil)) return found
      return (await lookup()) ?? undefined
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
        const writes: Promise<unknown>[] = [this.lasting ? redis.tesseraUpsert(this.key + id, json, String(ms), String(Date.now())) : redis.set(this.key + id, json, 'PX', ms)]
        if (payload.uid) writes.push(redis.set(`${this.key}uid:${payload.uid}`, id, 'PX', ms))
        if (payload.grantId) {
          const grant = `${PREFIX}grant:${payload.grantId}`
          writes.push(redis.sadd(grant, `${this.name}:${id}`), redis.pexpire(grant, ms, 'GT'), redis.pexpire(grant, ms, 'NX'))
        }
        await Promise.all(writes)
      }, () => this.pg.upsert(id, payload, expiresIn))
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!lookable(id)) return undefined
      return this.either(async () => {
        const [payload, consumed] = await redis.mget(this.key + id, this.consumedKey + id)
        return this.orPg(await this.read(payload ?? null, consumed ?? null), () => this.pg.find(id))
      }, async () => (await this.pg.find(id)) ?? undefined)
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!lookable(uid)) return undefined
      return this.either(async () => {
        const found = await redis.tesseraByUid(`${this.key}uid:${uid}`, this.key, this.consumedKey)
        return this.orPg(found ? await this.read(found[0], found[1]) : undefined, () => this.pg.findByUid!(uid))
      }, async () => (await this.pg.findByUid!(uid)) ?? undefined)
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return (await this.pg.findByUserCode!(userCode)) ?? undefined
    }

    async consume(id: string): Promise<void> {
      if (!lookable(id)) throw new errors.InvalidGrant('grant request is invalid')
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
      if (!lookable(id)) return
      await this.either(async () => {
        await redis.del(this.key + id, this.consumedKey + id)
        // A lasting one may be in PostgreSQL as well (an offline grant, or written during an outage).
        if (this.lasting || Date.now() < pgUntil) await this.pg.destroy(id)
      }, () => this.pg.destroy(id))
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!lookable(grantId)) return
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
