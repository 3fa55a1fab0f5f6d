// Inline read model `policies`: each security policy's settings and the users and groups it is assigned to.
import { POLICY_EVENT_TYPES, type PolicyEvent, type PolicySettings, type PolicyTarget } from '../domain/policy/events.js'
import { evolvePolicy, initialPolicyState, type PolicyState } from '../domain/policy/state.js'
import type { PoliciesTable } from '../read-models/policies.js'
import { stateProjection } from './fold.js'

export const policiesProjection = stateProjection<PolicyState, PolicyEvent, PoliciesTable & Record<string, unknown>>({
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
