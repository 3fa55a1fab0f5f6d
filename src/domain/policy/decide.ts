// Policy commands -> events. Pure: the id and the settings come in with the command.
import {
  DEFAULT_POLICY_ID, DEFAULT_SETTINGS, SETTING_BOUNDS, SIGN_IN_METHODS, type PolicyEvent, type PolicySettings, type PolicyTarget,
} from './events.js'
import { sameTarget, type PolicyState } from './state.js'

export class PolicyError extends Error {
  override name = 'PolicyError'
  statusCode = 422
}

export class UnknownPolicy extends PolicyError {
  override name = 'UnknownPolicy'
  override statusCode = 404
  constructor(policyId: string) {
    super(`no policy ${policyId}`)
  }
}

export class InvalidPolicy extends PolicyError {
  override name = 'InvalidPolicy'
}

export class PolicyConflict extends PolicyError {
  override name = 'PolicyConflict'
  override statusCode = 409
}

export type PolicyCommand =
  /** onlyNew: create it, refusing an id that exists (a creation form); otherwise create or change. */
  | { type: 'SetPolicy'; data: { name: string; priority: number; settings: PolicySettings; onlyNew?: boolean } }
  | { type: 'AssignPolicy'; data: { target: PolicyTarget } }
  | { type: 'UnassignPolicy'; data: { target: PolicyTarget } }
  | { type: 'DeletePolicy'; data: Record<string, never> }

const POLICY_ID = /^[a-z0-9][a-z0-9-]{0,62}$/

/**
 * A complete, valid set of settings, or the first thing wrong with it:
 * - at least one method, each a known one; digits 6 and/or 8;
 * - every number an integer within SETTING_BOUNDS.
 */
export function checkSettings(settings: PolicySettings): PolicySettings {
  const methods = [...new Set(settings.methods)]
  if (methods.length === 0) throw new InvalidPolicy('a policy must allow at least one sign-in method')
  const unknown = methods.find((m) => !SIGN_IN_METHODS.includes(m))
  if (unknown) throw new InvalidPolicy(`unknown sign-in method "${unknown}": use ${SIGN_IN_METHODS.join(', ')}`)
  const digits = [...new Set(settings.digits)].sort()
  if (digits.length === 0 || digits.some((d) => d !== 6 && d !== 8)) throw new InvalidPolicy('digits must be 6, 8 or both')
  if (settings.firstMethodWithPassword !== undefined && typeof settings.firstMethodWithPassword !== 'boolean') {
    throw new InvalidPolicy('firstMethodWithPassword must be true or false')
  }
  if (settings.userRequestsSoftwareTokens !== undefined && typeof settings.userRequestsSoftwareTokens !== 'boolean') {
    throw new InvalidPolicy('userRequestsSoftwareTokens must be true or false')
  }
  // Policies written before a number setting existed take its default.
  settings = { ...DEFAULT_SETTINGS, ...settings }
  for (const [name, [min, max]] of Object.entries(SETTING_BOUNDS)) {
    const value = settings[name as keyof typeof SETTING_BOUNDS]
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidPolicy(`${name} must be a whole number from ${min} to ${max}`)
  }
  return {
    methods: SIGN_IN_METHODS.filter((m) => methods.includes(m)), digits, totpWindow: settings.totpWindow,
    lockThreshold: settings.lockThreshold, lockSeconds: settings.lockSeconds,
    activationAttemptsPerMinute: settings.activationAttemptsPerMinute, maxMethods: settings.maxMethods,
    temporaryCodeMaxDays: settings.temporaryCodeMaxDays,
    // Policies written before this setting existed allowed it.
    firstMethodWithPassword: settings.firstMethodWithPassword ?? true,
    sentCodeLength: settings.sentCodeLength, sentCodeMinutes: settings.sentCodeMinutes, sendsPerHour: settings.sendsPerHour,
    activationCodeDays: settings.activationCodeDays, userRequestsSoftwareTokens: settings.userRequestsSoftwareTokens ?? false,
  }
}

export function decidePolicy(state: PolicyState, command: PolicyCommand): PolicyEvent[] {
  const policyId = state.policyId
  const isDefault = policyId === DEFAULT_POLICY_ID
  switch (command.type) {
    case 'SetPolicy': {
      // - An id is 1 to 63 lower-case letters, digits or '-'; a name 1 to 100 printable characters.
      // - A priority is 0 to 1000 (lower wins); the default policy has none.
      if (!POLICY_ID.test(policyId)) throw new InvalidPolicy("a policy id is 1 to 63 lower-case letters, digits or '-'")
      const name = command.data.name.replace(/\s+/g, ' ').trim()
      if (name.length < 1 || name.length > 100 || /\p{Cc}/u.test(name)) throw new InvalidPolicy('the name must be 1 to 100 printable characters')
      const priority = isDefault ? 0 : command.data.priority
      if (!Number.isInteger(priority) || priority < 0 || priority > 1000) throw new InvalidPolicy('priority must be a whole number from 0 to 1000')
      const data = { policyId, name, priority, settings: checkSettings(command.data.settings) }
      if (!state.exists) return [{ type: 'PolicyCreated', data }]
      if (command.data.onlyNew) throw new PolicyConflict(`a policy ${policyId} already exists`)
      const same = state.name === name && state.priority === priority && JSON.stringify(state.settings) === JSON.stringify(data.settings)
      return same ? [] : [{ type: 'PolicyChanged', data }]
    }
    case 'AssignPolicy': {
      // - The default policy applies to everyone without another: it is not assigned.
      // - A user or group holds a policy once.
      if (isDefault) throw new PolicyConflict('the default policy applies to everyone without another policy; it cannot be assigned')
      if (!state.exists) throw new UnknownPolicy(policyId)
      const { target } = command.data
      if (state.targets.some((t) => sameTarget(t, target))) throw new PolicyConflict(`this policy is already assigned to that ${target.kind}`)
      return [{ type: 'PolicyAssigned', data: { policyId, target } }]
    }
    case 'UnassignPolicy': {
      if (!state.exists) throw new UnknownPolicy(policyId)
      const { target } = command.data
      if (!state.targets.some((t) => sameTarget(t, target))) throw new PolicyConflict(`this policy is not assigned to that ${target.kind}`)
      return [{ type: 'PolicyUnassigned', data: { policyId, target } }]
    }
    case 'DeletePolicy': {
      if (isDefault) throw new PolicyConflict('the default policy cannot be deleted; change its settings instead')
      if (!state.exists) throw new UnknownPolicy(policyId)
      return [{ type: 'PolicyDeleted', data: { policyId } }]
    }
    default: {
      const unknown: never = command
      throw new Error(`unknown policy command ${(unknown as { type: string }).type}`)
    }
  }
}
