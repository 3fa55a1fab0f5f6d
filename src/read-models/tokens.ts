// The tokens read model: one row per token, exactly the state a decision needs, with its stream version.
import { sql, type Generated } from 'kysely'
import { initialState, type TokenState } from '../domain/token/state.js'
import type { PolicySettings } from '../domain/policy/events.js'
import { executePrepared } from '../db/prepared.js'
import type { Executor } from './database.js'
import { effectivePolicyId, settingsOf } from './policies.js'

export interface TokensTable {
  serial: string
  status: string
  kind: string
  destination: string | null
  remote_service: string | null
  remote_credential: string | null
  algorithm: string
  digits: number
  period: number | null
  counter: string | number | null
  manufacturer: string | null
  model: string | null
  user_id: string | null
  name: string | null
  last_step: string | number | null
  drift: number
  activation_failures: number
  /** jsonb: user id -> wrong activation codes on this inventory token (a JSON text when written). */
  claim_failures: Record<string, number> | string
  held_for: string | null
  failures: number
  locked_until: Date | null
  disabled: boolean
  lock_count: number
  last_used_at: Date | null
  seed_fingerprint: string | null
  activated_at: Date | null
  imported_at: Date
  version: number
}

export interface TokenSecretsTable {
  serial: string
  key_id: string
  nonce: Buffer
  ciphertext: Buffer
  created_at: Generated<Date>
}

export function stateFromRow(row: TokensTable): TokenState {
  return {
    serial: row.serial,
    status: row.status as TokenState['status'],
    kind: row.kind as TokenState['kind'],
    destination: row.destination,
    remoteService: row.remote_service,
    remoteCredential: row.remote_credential,
    algorithm: row.algorithm as TokenState['algorithm'],
    digits: row.digits as 6 | 8,
    period: row.period,
    counter: row.counter === null ? null : Number(row.counter),
    manufacturer: row.manufacturer,
    model: row.model,
    userId: row.user_id,
    name: row.name,
    lastStep: row.last_step === null ? null : Number(row.last_step),
    drift: row.drift,
    activationFailures: row.activation_failures,
    claimFailures: typeof row.claim_failures === 'string' ? JSON.parse(row.claim_failures) : row.claim_failures ?? {},
    heldFor: row.held_for,
    failures: row.failures,
    lockedUntil: row.locked_until,
    disabled: row.disabled,
    lockCount: row.lock_count,
    lastUsedAt: row.last_used_at,
    seedFingerprint: row.seed_fingerprint,
    activatedAt: row.activated_at,
    importedAt: row.imported_at,
    version: row.version,
  }
}

export function rowFromState(s: TokenState): TokensTable {
  return {
    serial: s.serial, status: s.status, kind: s.kind, destination: s.destination,
    remote_service: s.remoteService, remote_credential: s.remoteCredential, algorithm: s.algorithm, digits: s.digits, period: s.period,
    counter: s.counter, manufacturer: s.manufacturer, model: s.model, user_id: s.userId, name: s.name,
    last_step: s.lastStep, drift: s.drift, activation_failures: s.activationFailures,
    claim_failures: JSON.stringify(s.claimFailures), held_for: s.heldFor, failures: s.failures,
    locked_until: s.lockedUntil, disabled: s.disabled, lock_count: s.lockCount, last_used_at: s.lastUsedAt, seed_fingerprint: s.seedFingerprint,
    activated_at: s.activatedAt,
    imported_at: s.importedAt ?? new Date(0), version: s.version,
  }
}

export interface TokenWithSeed {
  state: TokenState
  sealed: { keyId: string; nonce: Buffer; ciphertext: Buffer } | null
  /** The settings of the owner's effective policy (the default's for an unassigned token). */
  policy: PolicySettings
}

type SeedRow = TokensTable & { key_id: string | null; nonce: Buffer | null; ciphertext: Buffer | null; policy: PolicySettings | null }

function withSeed(serial: string, row: SeedRow | undefined): TokenWithSeed {
  if (!row) return { state: initialState(serial), sealed: null, policy: settingsOf(null) }
  return {
    state: stateFromRow(row),
    sealed: row.key_id ? { keyId: row.key_id, nonce: row.nonce!, ciphertext: row.ciphertext! } : null,
    policy: settingsOf(row.policy),
  }
}

/** The columns of tokens, listed: the load is a prepared statement, which must not select `*` (db/prepared.ts). */
const TOKEN_COLUMNS = [
  'serial', 'status', 'kind', 'destination', 'remote_service', 'remote_credential', 'algorithm', 'digits', 'period', 'counter', 'manufacturer', 'model', 'user_id', 'name',
  'last_step', 'drift', 'activation_failures', 'claim_failures', 'held_for', 'failures', 'locked_until', 'disabled', 'lock_count', 'last_used_at',
  'seed_fingerprint', 'activated_at', 'imported_at', 'version',
] as const satisfies readonly (keyof TokensTable)[]
// A column added to TokensTable but not listed above fails to compile here.
const everyColumn: Record<Exclude<keyof TokensTable, (typeof TOKEN_COLUMNS)[number]>, never> = {}
void everyColumn

/**
 * A token's row, its sealed seed and its owner's policy settings: what a decision needs, in one query, a
 * prepared statement (its text is the same for any number of serials).
 */
const tokenQuery = (serials: readonly string[]) => sql<SeedRow>`
  select ${sql.join(TOKEN_COLUMNS.map((c) => sql.ref(`t.${c}`)))}, s.key_id, s.nonce, s.ciphertext,
    (select p.settings from policies p where p.id = ${effectivePolicyId(sql.ref('t.user_id'))} and p.exists) as policy
  from tokens t left join token_secrets s using (serial)
  where t.serial = any(${serials}::text[])`

/**
 * Loads requested in the same tick of the event loop go to the database as one query: concurrent
 * verifications share a round trip, the way their writes share a statement (commands/token-writer.ts).
 */
class TokenLoader {
  private pending = new Map<string, { resolve: (row: SeedRow | undefined) => void; reject: (e: unknown) => void }[]>()

  constructor(private readonly db: Executor) {}

  load(serial: string): Promise<SeedRow | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(serial)
      if (waiting) waiting.push({ resolve, reject })
      else this.pending.set(serial, [{ resolve, reject }])
      if (this.pending.size === 1 && !waiting) setImmediate(() => void this.flush())
    })
  }

  private async flush(): Promise<void> {
    const batch = this.pending
    this.pending = new Map()
    try {
      const result = await executePrepared(this.db, tokenQuery([...batch.keys()]))
      const rows = new Map(result.rows.map((r) => [r.serial, r]))
      for (const [serial, waiters] of batch) for (const w of waiters) w.resolve(rows.get(serial))
    } catch (error) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(error)
    }
  }
}

const loaders = new WeakMap<object, TokenLoader>()

/** A token's state, sealed seed and policy in one round trip; an unknown serial gives the initial state. */
export async function loadToken(db: Executor, serial: string): Promise<TokenWithSeed> {
  if (db.isTransaction) {
    const result = await executePrepared(db, tokenQuery([serial]))
    return withSeed(serial, result.rows[0])
  }
  let loader = loaders.get(db)
  if (!loader) loaders.set(db, (loader = new TokenLoader(db)))
  return withSeed(serial, await loader.load(serial))
}

/** The user's tokens, newest activation first. */
export async function tokensOfUser(db: Executor, userId: string): Promise<TokenState[]> {
  // A prepared statement (every code typed at Enter code runs it), so its columns are listed.
  const rows = await executePrepared(db, sql<TokensTable>`select ${sql.join(TOKEN_COLUMNS.map((c) => sql.ref(c)))} from tokens where user_id = ${userId}
    order by activated_at desc nulls last, serial`)
  return rows.rows.map(stateFromRow)
}

/** The user's sign-in methods: their active tokens. */
export async function activeTokensOfUser(db: Executor, userId: string): Promise<TokenState[]> {
  return (await tokensOfUser(db, userId)).filter((t) => t.status === 'active')
}

export interface TokenSearch {
  /** A serial's beginning. */
  serial?: string
  /** The owner's user principal name. */
  upn?: string
  status?: string
  manufacturer?: string
  model?: string
  /** The last serial of the previous page. */
  after?: string
  limit: number
}

/** Admin search, by serial order, a page at a time; each token with its owner's user principal name. */
export async function searchTokens(db: Executor, q: TokenSearch): Promise<{ tokens: (TokenState & { owner: string | null })[]; next: string | null }> {
  let query = db.selectFrom('tokens').leftJoin('users', 'users.id', 'tokens.user_id').selectAll('tokens').select('users.upn as owner')
    .orderBy('tokens.serial').limit(q.limit)
  if (q.serial) query = query.where('tokens.serial', 'like', `${q.serial.replace(/[%_\\]/g, '\\$&')}%`)
  if (q.status) query = query.where('tokens.status', '=', q.status)
  if (q.manufacturer) query = query.where('tokens.manufacturer', '=', q.manufacturer)
  if (q.model) query = query.where('tokens.model', '=', q.model)
  if (q.after) query = query.where('tokens.serial', '>', q.after)
  if (q.upn !== undefined) query = query.where((eb) => eb(eb.fn('lower', ['users.upn']), '=', q.upn!.toLowerCase()))
  const rows = await query.execute() as (TokensTable & { owner: string | null })[]
  return {
    tokens: rows.map((r) => ({ ...stateFromRow(r), owner: r.owner })),
    next: rows.length === q.limit ? rows[rows.length - 1]!.serial : null,
  }
}
