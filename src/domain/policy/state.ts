import { DEFAULT_POLICY_ID, DEFAULT_SETTINGS, type PolicyEvent, type PolicySettings, type PolicyTarget } from './events.js'

export interface PolicyState {
  policyId: string
  exists: boolean
  name: string
  /** Among several policies of a user's groups (or several of the user's own), the lowest number wins. */
  priority: number
  settings: PolicySettings
  targets: PolicyTarget[]
  version: number
}

export function initialPolicyState(policyId: string): PolicyState {
  return {
    policyId, exists: false, name: policyId === DEFAULT_POLICY_ID ? 'Default' : '', priority: 0,
    settings: DEFAULT_SETTINGS, targets: [], version: 0,
  }
}

export const sameTarget = (a: PolicyTarget, b: PolicyTarget) => a.kind === b.kind && a.id === b.id

export function evolvePolicy(state: PolicyState, event: PolicyEvent): PolicyState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'PolicyCreated':
    case 'PolicyChanged':
      // Settings a later version of the gateway added are filled with their defaults.
      return { ...next, exists: true, name: event.data.name, priority: event.data.priority, settings: { ...DEFAULT_SETTINGS, ...event.data.settings } }
    case 'PolicyAssigned':
      return { ...next, targets: [...state.targets, event.data.target] }
    case 'PolicyUnassigned':
      return { ...next, targets: state.targets.filter((t) => !sameTarget(t, event.data.target)) }
    case 'PolicyDeleted':
      return { ...initialPolicyState(state.policyId), version: next.version }
    default: {
      const unknown: never = event
      throw new Error(`unknown policy event ${(unknown as { type: string }).type}`)
    }
  }
}
