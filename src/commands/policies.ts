// Security policy commands: set (create or change), assign to a user or group, unassign, delete.
// Each loads the policy's row with its version, decides with the pure domain and appends with the
// expected version; every node reads policies from the database, so a change applies at once everywhere.
import { decidePolicy, type PolicyCommand } from '../domain/policy/decide.js'
import { policyStream, type PolicySettings, type PolicyTarget } from '../domain/policy/events.js'
import type { PolicyState } from '../domain/policy/state.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import type { EventMetadata } from '../event-store/types.js'
import { loadPolicy } from '../read-models/policies.js'
import { appendWithProjections } from './append.js'
import { MAX_CONFLICT_RETRIES, type CommandContext } from './context.js'

async function run(ctx: Pick<CommandContext, 'db' | 'store'>, policyId: string, command: PolicyCommand, meta: EventMetadata): Promise<PolicyState> {
  for (let attempt = 0; ; attempt++) {
    const state = await loadPolicy(ctx.db, policyId)
    const events = decidePolicy(state, command)
    if (events.length === 0) return state
    try {
      await appendWithProjections(ctx, policyStream(policyId), state.version === 0 ? 'no-stream' : state.version, events, meta)
      return loadPolicy(ctx.db, policyId)
    } catch (error) {
      if (error instanceof WrongExpectedVersion && attempt < MAX_CONFLICT_RETRIES) continue
      throw error
    }
  }
}

export function setPolicy(ctx: Pick<CommandContext, 'db' | 'store'>, policyId: string, input: { name: string; priority: number; settings: PolicySettings; onlyNew?: boolean }, meta: EventMetadata) {
  return run(ctx, policyId, { type: 'SetPolicy', data: input }, meta)
}

export function assignPolicy(ctx: Pick<CommandContext, 'db' | 'store'>, policyId: string, target: PolicyTarget, meta: EventMetadata) {
  return run(ctx, policyId, { type: 'AssignPolicy', data: { target } }, meta)
}

export function unassignPolicy(ctx: Pick<CommandContext, 'db' | 'store'>, policyId: string, target: PolicyTarget, meta: EventMetadata) {
  return run(ctx, policyId, { type: 'UnassignPolicy', data: { target } }, meta)
}

export function deletePolicy(ctx: Pick<CommandContext, 'db' | 'store'>, policyId: string, meta: EventMetadata) {
  return run(ctx, policyId, { type: 'DeletePolicy', data: {} }, meta)
}
