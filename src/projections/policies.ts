// Inline read model `policies`: each security policy's settings and the users and groups it is
// assigned to, and the same assignments one row each in `policy_assignments` (for index lookups).
import type { Kysely } from 'kysely'
import { POLICY_EVENT_TYPES, type PolicyEvent, type PolicySettings, type PolicyTarget } from '../domain/policy/events.js'
import { evolvePolicy, initialPolicyState, type PolicyState } from '../domain/policy/state.js'
import type { PoliciesTable } from '../read-models/policies.js'
import { byStream, stateProjection } from './fold.js'
import type { Projection } from './types.js'

const policyRows = stateProjection<PolicyState, PolicyEvent, PoliciesTable & Record<string, unknown>>({
  name: 'policies',
  table: 'policies',
  key: 'id',
  prefix: 'policy-',
  handles: POLICY_EVENT_TYPES,
  initial: initialPolicyState,
  evolve: evolvePolicy,
  fromRow: (r) => ({
    policyId: r.id, exists: r.exists, name: r.name, priority: r.priority, settings: r.settings as PolicySettings,
    targets: r.targets as PolicyTarget[], version: r.version,
  }),
  toRow: (s) => ({
    id: s.policyId, name: s.name, priority: s.priority, settings: JSON.stringify(s.settings) as unknown as PolicySettings,
    targets: JSON.stringify(s.targets) as unknown as PolicyTarget[], exists: s.exists, version: s.version,
  }),
})

export const policiesProjection: Projection = {
  ...policyRows,
  tables: ['policies', 'policy_assignments'],
  async apply(db: Kysely<any>, events) {
    await policyRows.apply(db, events)
    // The assignments of the policies just written, replaced from their rows.
    const ids = [...byStream(events).keys()].map((streamId) => streamId.slice('policy-'.length))
    await db.deleteFrom('policy_assignments').where('policy_id', 'in', ids).execute()
    const policies = await db.selectFrom('policies').selectAll().where('id', 'in', ids).where('exists', '=', true).execute() as PoliciesTable[]
    const rows = policies.flatMap((p) => p.targets.map((t) => ({ target_kind: t.kind, target_id: t.id, policy_id: p.id, priority: p.priority })))
    if (rows.length > 0) await db.insertInto('policy_assignments').values(rows).execute()
  },
}
