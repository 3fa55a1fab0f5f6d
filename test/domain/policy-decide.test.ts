// Security policies, given/when/then over events.
import t from 'tap'
import { decidePolicy, type PolicyCommand } from '../../src/domain/policy/decide.js'
import { DEFAULT_SETTINGS, type PolicyEvent } from '../../src/domain/policy/events.js'
import { evolvePolicy, initialPolicyState, type PolicyState } from '../../src/domain/policy/state.js'

const given = (id: string, ...events: PolicyEvent[]): PolicyState => events.reduce(evolvePolicy, initialPolicyState(id))
const set = (settings = DEFAULT_SETTINGS, name = 'Strict', priority = 10): PolicyCommand => ({ type: 'SetPolicy', data: { name, priority, settings } })
const created: PolicyEvent = { type: 'PolicyCreated', data: { policyId: 'strict', name: 'Strict', priority: 10, settings: DEFAULT_SETTINGS } }

t.test('setting a new policy creates it; setting it again unchanged writes nothing; a change is PolicyChanged', async (t) => {
  t.same(decidePolicy(given('strict'), set()), [created])
  t.same(decidePolicy(given('strict', created), set()), [], 'the same settings again: no event')
  const changed = decidePolicy(given('strict', created), set({ ...DEFAULT_SETTINGS, lockThreshold: 3 }))
  t.match(changed, [{ type: 'PolicyChanged', data: { settings: { lockThreshold: 3 } } }])
})

t.test('settings are normalised: methods in a fixed order, digits sorted, duplicates dropped', async (t) => {
  const [event] = decidePolicy(given('p'), set({ ...DEFAULT_SETTINGS, methods: ['temporary_code', 'hardware', 'hardware'], digits: [8, 6, 8] }))
  t.same((event as Extract<PolicyEvent, { type: 'PolicyCreated' }>).data.settings.methods, ['hardware', 'temporary_code'])
  t.same((event as Extract<PolicyEvent, { type: 'PolicyCreated' }>).data.settings.digits, [6, 8])
})

t.test('the default policy has no priority, is never assigned and never deleted', async (t) => {
  t.match(decidePolicy(given('default'), set(DEFAULT_SETTINGS, 'Everyone', 7)), [{ type: 'PolicyCreated', data: { priority: 0 } }])
  t.throws(() => decidePolicy(given('default'), { type: 'AssignPolicy', data: { target: { kind: 'group', id: 'x' } } }), { name: 'PolicyConflict' })
  t.throws(() => decidePolicy(given('default'), { type: 'DeletePolicy', data: {} }), { name: 'PolicyConflict' })
})

t.test('a deleted policy loses its assignments and can be created again', async (t) => {
  const state = given('strict', created,
    { type: 'PolicyAssigned', data: { policyId: 'strict', target: { kind: 'user', id: 'u1' } } },
    { type: 'PolicyDeleted', data: { policyId: 'strict' } })
  t.equal(state.exists, false)
  t.same(state.targets, [])
  t.equal(state.version, 3, 'the stream goes on')
  t.throws(() => decidePolicy(state, { type: 'AssignPolicy', data: { target: { kind: 'user', id: 'u1' } } }), { name: 'UnknownPolicy' })
  t.match(decidePolicy(state, set()), [{ type: 'PolicyCreated' }])
})

t.test('settings recorded before a setting existed replay with its default', async (t) => {
  const { temporaryCodeMaxDays: _, ...older } = DEFAULT_SETTINGS
  const state = given('old', { type: 'PolicyCreated', data: { policyId: 'old', name: 'Old', priority: 1, settings: { ...older, lockThreshold: 4 } as typeof DEFAULT_SETTINGS } })
  t.equal(state.settings.temporaryCodeMaxDays, DEFAULT_SETTINGS.temporaryCodeMaxDays)
  t.equal(state.settings.lockThreshold, 4)
})

t.test('numbers out of bounds are refused with the bounds named', async (t) => {
  t.throws(() => decidePolicy(given('p'), set({ ...DEFAULT_SETTINGS, lockSeconds: 5 })), { name: 'InvalidPolicy', message: 'lockSeconds must be a whole number from 60 to 604800' })
  t.throws(() => decidePolicy(given('p'), set({ ...DEFAULT_SETTINGS, maxMethods: 1.5 })), { name: 'InvalidPolicy', message: /maxMethods/ })
  t.throws(() => decidePolicy(given('p'), set({ ...DEFAULT_SETTINGS, digits: [7 as 6] })), { name: 'InvalidPolicy', message: 'digits must be 6, 8 or both' })
})
