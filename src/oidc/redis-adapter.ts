// With REDIS_URL, the provider's shortest-lived artifacts live in Redis, as Keycloak keeps its sessions in
// its cache: interactions (the sign-in page's state, 30 minutes), authorization codes (60 s) and what
// lasts no longer (replay detection, pushed requests). They are most of a sign-in's writes, read back
// within seconds, and nothing an audit needs. What must last, or be revoked together with an account
// (sessions, grants, access and refresh tokens), and relying applications stay in PostgreSQL
// (adapter.ts): a password reset or a disabled account ends them there at once, from any process or the
// CLI. A code whose grant is gone is refused at the token endpoint, wherever the code is kept.
// - Codes are consumed once across processes: SET NX on the code's "consumed" key, in one script with
//   its existence check. A second redemption is refused and the grant's tokens are revoked (RFC 6749 4.1.2).
// - Commands from concurrent requests go out together (ioredis auto-pipelining): fewer round trips.
// - Redis unreachable: each operation falls back to PostgreSQL, and for the next FALLBACK_MS a miss in
//   Redis is looked up in PostgreSQL too, so sign-ins go on (more slowly) while it is down.
import type { Redis } from 'ioredis'
import { errors } from 'oidc-provider'
import type { Adapter, AdapterPayload } from 'oidc-provider'
import type { Db } from '../read-models/database.js'
import { kyselyAdapter, lookable } from './adapter.js'

/** The models kept in Redis when it is configured. */
export const REDIS_MODELS: ReadonlySet<string> = new Set(['Interaction', 'AuthorizationCode', 'ReplayDetection', 'PushedAuthorizationRequest'])
const PREFIX = 'tessera-oidc:'
/** After a fallback, misses are looked up in PostgreSQL this long: the longest a Redis-kept artifact lives. */
const FALLBACK_MS = 30 * 60 * 1000

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

export function hybridAdapter(db: Db, redis: Redis) {
  const Pg = kyselyAdapter(db)
  let pgUntil = 0
  const fallback = () => {
    pgUntil = Date.now() + FALLBACK_MS
  }

  return class HybridAdapter implements Adapter {
    private readonly pg: Adapter
    private readonly inRedis: boolean
    private readonly key: string
    private readonly consumedKey: string

    constructor(readonly name: string) {
      this.pg = new Pg(name)
      this.inRedis = REDIS_MODELS.has(name)
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

    private read(payload: string | null, consumed: string | null): AdapterPayload | undefined {
      if (payload === null) return undefined
      const parsed = JSON.parse(payload) as AdapterPayload
      return consumed === null ? parsed : { ...parsed, consumed: Number(consumed) }
    }

    /** A miss in Redis, looked up in PostgreSQL while an outage's writes may be there. */
    private async orPg(found: AdapterPayload | undefined, lookup: () => Promise<AdapterPayload | undefined | void>): Promise<AdapterPayload | undefined> {
      if (found || Date.now() >= pgUntil) return found
      return (await lookup()) ?? undefined
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      await this.either(async () => {
        const ms = Math.max(1, Math.round((expiresIn || 24 * 3600) * 1000))
        const writes: Promise<unknown>[] = [redis.set(this.key + id, JSON.stringify(payload), 'PX', ms)]
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
        return this.orPg(this.read(payload ?? null, consumed ?? null), () => this.pg.find(id))
      }, async () => (await this.pg.find(id)) ?? undefined)
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!lookable(uid)) return undefined
      return this.either(async () => {
        const found = await redis.eval(BY_UID, 1, `${this.key}uid:${uid}`, this.key, this.consumedKey) as [string | null, string | null] | null
        return this.orPg(found ? this.read(found[0], found[1]) : undefined, () => this.pg.findByUid!(uid))
      }, async () => (await this.pg.findByUid!(uid)) ?? undefined)
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return (await this.pg.findByUserCode!(userCode)) ?? undefined
    }

    async consume(id: string): Promise<void> {
      if (!lookable(id)) throw new errors.InvalidGrant('grant request is invalid')
      await this.either(async () => {
        const result = Number(await redis.eval(CONSUME, 2, this.key + id, this.consumedKey + id, String(Math.floor(Date.now() / 1000))))
        if (result === 1) return
        if (result === -1 && Date.now() < pgUntil) return this.pg.consume(id)
        if (result === 0) {
          const payload = await redis.get(this.key + id)
          const grantId = payload ? (JSON.parse(payload) as AdapterPayload).grantId : undefined
          // The grant's tokens go, wherever they are kept (RFC 6749 4.1.2): its access and refresh tokens are in PostgreSQL.
          if (grantId) await Promise.all([this.revokeByGrantId(grantId), this.pg.revokeByGrantId(grantId)])
        }
        throw new errors.InvalidGrant('grant request is invalid: already consumed')
      }, () => this.pg.consume(id))
    }

    async destroy(id: string): Promise<void> {
      if (!lookable(id)) return
      await this.either(async () => {
        await redis.del(this.key + id, this.consumedKey + id)
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
        if (Date.now() < pgUntil) await this.pg.revokeByGrantId(grantId)
      }, () => this.pg.revokeByGrantId(grantId))
    }
  }
}
