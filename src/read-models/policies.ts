// The policies read model, and which policy applies to a user: their own, else their groups', else
// the default; among several of one kind the lowest priority number, then the lowest id.
import { sql, type RawBuilder } from 'kysely'
import { DEFAULT_POLICY_ID, DEFAULT_SETTINGS, type PolicySettings, type PolicyTarget } from '../domain/policy/events.js'
import { initialPolicyState, type PolicyState } from '../domain/policy/state.js'
import type { Executor } from './database.js'

export interface PoliciesTable {
  id: string
  name: string
  priority: number
  settings: PolicySettings
  targets: PolicyTarget[]
  exists: boolean
  version: number
}

export interface PolicyAssignmentsTable {
  target_kind: 'user' | 'group'
  target_id: string
  policy_id: string
  priority: number
}

/**
 * The id of the policy that applies to the user whose id `userId` gives (a column or a value), as an
 * SQL expression: index lookups in policy_assignments, so it can ride along a token's load.
 */
export function effectivePolicyId(userId: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`coalesce(
    (select a.policy_id from policy_assignments a where a.target_kind = 'user' and a.target_id = ${userId}
      order by a.priority, a.policy_id limit 1),
    (select a.policy_id from users u cross join jsonb_array_elements_text(u.groups) g(name)
      join policy_assignments a on a.target_kind = 'group' and a.target_id = g.name
      where u.id = ${userId} order by a.priority, a.policy_id limit 1),
    ${DEFAULT_POLICY_ID})`
}

export interface EffectivePolicy {
  /** The policy's id, or `default` for the built-in settings. */
  id: string
  name: string
  /** Why it applies: assigned to the user, to one of their groups, or the default. */
  source: 'user' | 'group' | 'default'
  settings: PolicySettings
}

/** Settings as stored, with the ones a later version added filled in; null means the built-in defaults. */
export function settingsOf(stored: PolicySettings | null | undefined): PolicySettings {
  return stored ? { ...DEFAULT_SETTINGS, ...stored } : DEFAULT_SETTINGS
}

export function policyStateFromRow(row: PoliciesTable | undefined, policyId: string): PolicyState {
  if (!row) return initialPolicyState(policyId)
  return { policyId: row.id, exists: row.exists, name: row.name, priority: row.priority, settings: settingsOf(row.settings), targets: row.targets, version: row.version }
}

export async function loadPolicy(db: Executor, policyId: string): Promise<PolicyState> {
  const row = await db.selectFrom('policies').selectAll().where('id', '=', policyId).executeTakeFirst() as PoliciesTable | undefined
  return policyStateFromRow(row, policyId)
}

export async function listPolicies(db: Executor): Promise<PolicyState[]> {
  const rows = await db.selectFrom('policies').selectAll().where('exists', '=', true).orderBy('priority').orderBy('id').execute() as PoliciesTable[]
  const list = rows.map((r) => policyStateFromRow(r, r.id))
  // The default policy is always listed, written or not.
  return list.some((p) => p.policyId === DEFAULT_POLICY_ID) ? list : [{ ...initialPolicyState(DEFAULT_POLICY_ID), exists: true }, ...list]
}

/** The policy that applies to this user (null: an unassigned token, which only the default governs). */
export async function effectivePolicy(db: Executor, userId: string | null): Promise<EffectivePolicy> {
  const result = await sql<PoliciesTable>`
    select p.* from policies p where p.id = ${effectivePolicyId(sql`${userId}::text`)} and p.exists`.execute(db)
  const row = result.rows[0]
  if (!row) return { id: DEFAULT_POLICY_ID, name: 'Default', source: 'default', settings: DEFAULT_SETTINGS }
  const source = row.targets.some((t) => t.kind === 'user' && t.id === userId) ? 'user' : row.id === DEFAULT_POLICY_ID ? 'default' : 'group'
  return { id: row.id, name: row.name, source, settings: settingsOf(row.settings) }
}
