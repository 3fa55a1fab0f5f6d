// oidc-provider's storage on PostgreSQL through Kysely, so several gateway processes share sessions,
// codes and grants.
// - Expired entries are never returned.
// - consume() is a compare-and-set: of two requests redeeming one authorization code, exactly one wins;
//   the other is refused and, as RFC 6749 section 4.1.2 asks, the grant's tokens are revoked.
// - Relying applications come from the `clients` read model (registered with `tessera clients add`), kept in
//   the process CLIENT_TTL_MS (the provider reads one three times a flow): a change made on this process
//   applies at once (clientChanged), one made on another within CLIENT_TTL_MS.
// - Every statement is a fixed text, sent as a named prepared statement straight on the pg pool, without the
//   query builder (a flow runs about 14 of them without Redis).
import { CompiledQuery, sql } from 'kysely'
import { errors } from 'oidc-provider'
import type { Adapter, AdapterPayload } from 'oidc-provider'
import { poolOf } from '../db/database.js'
import { executePrepared } from '../db/prepared.js'
import { clientCache } from './client-cache.js'
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

/** The adapter's statements, each sent as a named prepared statement (its name is the key). */
const STATEMENTS = {
  upsert: `insert into oidc_payloads (type, id, payload, grant_id, user_code, uid, expires_at) values ($1, $2, $3::jsonb, $4, $5, $6, $7)
    on conflict (type, id) do update set payload = excluded.payload, grant_id = excluded.grant_id,
      user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
  byId: 'select payload, consumed_at from oidc_payloads where type = $1 and id = $2 and (expires_at is null or expires_at > now())',
  byUid: 'select payload, consumed_at from oidc_payloads where type = $1 and uid = $2 and (expires_at is null or expires_at > now())',
  byUserCode: 'select payload, consumed_at from oidc_payloads where type = $1 and user_code = $2 and (expires_at is null or expires_at > now())',
  consume: 'update oidc_payloads set consumed_at = now() where type = $1 and id = $2 and consumed_at is null returning grant_id',
  destroy: 'delete from oidc_payloads where type = $1 and id = $2',
  revokeByGrantId: 'delete from oidc_payloads where grant_id = $1',
} as const
type Statement = keyof typeof STATEMENTS

/** Runs one of STATEMENTS on the database's pg pool (any other executor: through Kysely, unprepared). */
function runner(db: Db) {
  const pool = poolOf(db)
  return async <R>(statement: Statement, values: unknown[]): Promise<R[]> => {
    const text = STATEMENTS[statement]
    if (pool) return (await pool.query({ name: `tessera_oidc_${statement}`, text, values })).rows as R[]
    return (await db.executeQuery(CompiledQuery.raw(text, values))).rows as R[]
  }
}

type Row = { payload: AdapterPayload; consumed_at: Date | null }

export function kyselyAdapter(db: Db) {
  const clients = clientCache<AdapterPayload>()
  const run = runner(db)
  return class KyselyAdapter implements Adapter {
    constructor(readonly name: string) {}

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? new Date(Date.now() + expiresIn * 1000) : null
      await run('upsert', [this.name, id, JSON.stringify(payload), payload.grantId ?? null, payload.userCode ?? null, payload.uid ?? null, expiresAt])
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (!lookable(id)) return undefined
      if (this.name === 'Client') return this.findClient(id)
      return this.read(await run<Row>('byId', [this.name, id]))
    }

    private findClient(id: string): Promise<AdapterPayload | undefined> {
      return clients.get(id, () => this.readClient(id))
    }

    private async readClient(id: string): Promise<AdapterPayload | undefined> {
      const query = db.selectFrom('clients').leftJoin('client_secrets', 'client_secrets.client_id', 'clients.client_id')
        .select(['clients.client_id', 'clients.name', 'clients.redirect_uris', 'clients.public', 'client_secrets.secret_hash'])
        .where('clients.client_id', '=', id).where('clients.deleted', '=', false)
      const row = (await executePrepared(db, query)).rows[0]
      return row ? (clientMetadata(row, row.secret_hash) as unknown as AdapterPayload) : undefined
    }

    private read(rows: Row[]): AdapterPayload | undefined {
      const row = rows[0]
      if (!row) return undefined
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      if (!lookable(userCode)) return undefined
      return this.read(await run<Row>('byUserCode', [this.name, userCode]))
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      if (!lookable(uid)) return undefined
      return this.read(await run<Row>('byUid', [this.name, uid]))
    }

    async consume(id: string): Promise<void> {
      if (!lookable(id)) throw new errors.InvalidGrant('grant request is invalid')
      const consumed = await run<{ grant_id: string | null }>('consume', [this.name, id])
      if (consumed.length === 0) {
        const row = await sql<{ grant_id: string | null }>`select grant_id from oidc_payloads where type = ${this.name} and id = ${id}`.execute(db)
        if (row.rows[0]?.grant_id) await this.revokeByGrantId(row.rows[0].grant_id)
        throw new errors.InvalidGrant('grant request is invalid: already consumed')
      }
    }

    async destroy(id: string): Promise<void> {
      if (!lookable(id)) return
      await run('destroy', [this.name, id])
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (!lookable(grantId)) return
      await run('revokeByGrantId', [grantId])
    }
  }
}

/** Removes expired entries; run now and then (the gateway does it every few minutes). */
export async function pruneExpired(db: Db): Promise<number> {
  const result = await sql`delete from oidc_payloads where expires_at < now() - interval '1 minute'`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
