// oidc-provider's storage on PostgreSQL through Kysely, so several gateway processes share sessions,
// codes and grants.
// - Expired entries are never returned.
// - consume() is a compare-and-set: of two requests redeeming one authorization code, exactly one wins;
//   the other is refused and, as RFC 6749 section 4.1.2 asks, the grant's tokens are revoked.
// - Relying applications come from the `clients` read model (registered with `tessera clients add`), kept in
//   the process CLIENT_TTL_MS (the provider reads one three times a flow): a change made on this process
//   applies at once (clientChanged), one made on another within CLIENT_TTL_MS.
// - Every statement is a prepared statement (db/prepared.ts): a flow runs about 18 of them.
import { sql } from 'kysely'
import { errors } from 'oidc-provider'
import type { Adapter, AdapterPayload } from 'oidc-provider'
import { executePrepared } from '../db/prepared.js'
import { CLIENT_TTL_MS, clientCache, MAX_CACHED_CLIENTS } from './client-cache.js'
import type { Db } from '../read-models/database.js'

export function clientMetadata(row: { client_id: string; name: string; redirect_uris: string[]; public: boolean }, secretHash: string | null) {
  return {
    client_id: row.client_id,
    client_name: row.name,
    redirect_uris: row.redirect_uris,
    post_logout_redirect_uris: row.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: row.public ? 'none' : 'client_secret_basic',
    ...(row.public ? {} : { client_secret: secretHash ?? undefined }),
    id_token_signed_response_alg: 'ES256',
    require_auth_time: true,
  }
}

/**
 * Whether a lookup key can name a stored row at all: PostgreSQL's text holds no NUL character, and no id is
 * longer than this. Anything else is "not found", without a query (a NUL would fail the query: a 500).
 */
export const lookable = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && id.length <= 1024 && !id.includes('\u0000')

export function kyselyAdapter(db: Db) {
  const clients = clientCache<AdapterPayload>()
  return class KyselyAdapter implements Adapter {
    constructor(readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null
      await executePrepared(db, sql`
        insert into oidc_payloads (type, id, payload, grant_id, user_code, uid, expires_at)
        values (${this.name}, ${id}, ${JSON.stringify(payload)}::jsonb, ${payload.grantId ?? null}, ${payload.userCode ?? null},
                ${payload.uid ?? null}, ${expiresAt})
        on conflict (type, id) do update set payload = excluded.payload, grant_id = excluded.grant_id,
          user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`)
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!lookable(id)) return undefined
      if (this.name === 'Client') return this.findClient(id)
      return this.findWhere(sql`id = ${id}`)
    }

    private async findClient(id: string): Promise<AdapterPayload | undefined> {
      const now = Date.now()
      const cached = clients.get(id)
      if (cached && cached.until > now) return cached.payload
      const payload = await this.readClient(id)
      if (clients.size >= MAX_CACHED_CLIENTS) clients.clear()
      clients.set(id, { payload, until: now + CLIENT_TTL_MS })
      return payload
    }

    private async readClient(id: string): Promise<AdapterPayload | undefined> {
      const query = db.selectFrom('clients').leftJoin('client_secrets', 'client_secrets.client_id', 'clients.client_id')
        .select(['clients.client_id', 'clients.name', 'clients.redirect_uris', 'clients.public', 'client_secrets.secret_hash'])
        .where('clients.client_id', '=', id).where('clients.deleted', '=', false)
      const row = (await executePrepared(db, query)).rows[0]
      return row ? (clientMetadata(row, row.secret_hash) as unknown as AdapterPayload) : undefined
    }

    private async findWhere(condition: ReturnType<typeof sql>): Promise<AdapterPayload | undefined> {
      const result = await executePrepared(db, sql<{ payload: AdapterPayload; consumed_at: Date | null }>`
        select payload, consumed_at from oidc_payloads
        where type = ${this.name} and ${condition} and (expires_at is null or expires_at > now())`)
      const row = result.rows[0]
      if (!row) return undefined
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (!lookable(userCode)) return undefined
      return this.findWhere(sql`user_code = ${userCode}`)
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!lookable(uid)) return undefined
      return this.findWhere(sql`uid = ${uid}`)
    }

    async consume(id: string): Promise<void> {
      if (!lookable(id)) throw new errors.InvalidGrant('grant request is invalid')
      const result = await executePrepared(db, sql<{ grant_id: string | null }>`
        update oidc_payloads set consumed_at = now()
        where type = ${this.name} and id = ${id} and consumed_at is null
        returning grant_id`)
      if (result.rows.length === 0) {
        const row = await sql<{ grant_id: string | null }>`select grant_id from oidc_payloads where type = ${this.name} and id = ${id}`.execute(db)
        if (row.rows[0]?.grant_id) await this.revokeByGrantId(row.rows[0].grant_id)
        throw new errors.InvalidGrant('grant request is invalid: already consumed')
      }
    }

    async destroy(id: string): Promise<void> {
      if (!lookable(id)) return
      await executePrepared(db, sql`delete from oidc_payloads where type = ${this.name} and id = ${id}`)
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!lookable(grantId)) return
      await executePrepared(db, sql`delete from oidc_payloads where grant_id = ${grantId}`)
    }
  }
}

/** Removes expired entries; run now and then (the gateway does it every few minutes). */
export async function pruneExpired(db: Db): Promise<number> {
  const result = await sql`delete from oidc_payloads where expires_at < now() - interval '1 minute'`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
