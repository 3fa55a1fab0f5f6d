// The token's decisions, given events, when a command, then events or a refusal.
import t from 'tap'
import { decide, MAX_ACTIVATION_FAILURES, type TokenCommand } from '../../src/domain/token/decide.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { SerialAlreadyInInventory, SerialUnavailable, TokenAlreadyActivated, TokenLocked, TooManyAttempts, WrongCode } from '../../src/domain/token/errors.js'
import type { TokenEvent } from '../../src/domain/token/events.js'
import { evolve, initialState, type TokenState } from '../../src/domain/token/state.js'

const serial = '8659623756140'
const T0 = new Date('2026-11-22T10:00:00Z')
const imported: TokenEvent = { type: 'TokenImported', data: { serial, kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, counter: null,
  manufacturer: 'Token2', model: 'C202', seedFingerprint: 'f'.repeat(32), source: 'entra-csv' } }
const assigned: TokenEvent = { type: 'TokenAssigned', data: { serial, userId: 'alice', by: 'admin' } }
const activated: TokenEvent = { type: 'TokenActivated', data: { serial, userId: 'alice', step: 100, drift: 0 } }

function given(...events: TokenEvent[]): TokenState {
  return events.reduce((s, e) => evolve(s, e, T0), initialState(serial))
}

function verify(check: { valid: true; step: number; drift: number } | { valid: false }, now = T0, userId = 'alice'): TokenCommand {
  return { type: 'VerifyCode', data: { userId, check, now, policy: DEFAULT_SETTINGS, relyingApplication: 'payroll', level: 'mfa' } }
}

t.test('import: a new serial is imported (and assigned when a user is named); a known one is refused', async (t) => {
  const { userId: _, ...data } = { ...imported.data, userId: 'alice' }
  const d = decide(initialState(serial), { type: 'ImportToken', data: { ...data, userId: 'alice' } })
  t.same(d.events.map((e) => e.type), ['TokenImported', 'TokenAssigned'])
  t.type(decide(given(imported), { type: 'ImportToken', data: { ...data, userId: null } }).refusal, SerialAlreadyInInventory)
})

t.test('activation: an inventory token is claimed, named and activated in one decision', async (t) => {
  const d = decide(given(imported), { type: 'ActivateToken', data: { userId: 'bob', name: ' My  key ', check: { valid: true, step: 7, drift: -1 } } })
  t.same(d.events, [
    { type: 'TokenAssigned', data: { serial, userId: 'bob', by: 'self' } },
    { type: 'TokenRenamed', data: { serial, name: 'My key' } },
    { type: 'TokenActivated', data: { serial, userId: 'bob', step: 7, drift: -1 } },
  ])
})

t.test("activation: someone else's token and an unknown one get the same refusal and no event", async (t) => {
  for (const state of [given(imported, assigned), initialState(serial)]) {
    const d = decide(state, { type: 'ActivateToken', data: { userId: 'bob', name: 'x', check: { valid: true, step: 7, drift: 0 } } })
    t.type(d.refusal, SerialUnavailable)
    t.same(d.events, [])
  }
  t.type(decide(given(imported, assigned, activated), { type: 'ActivateToken', data: { userId: 'alice', name: 'x', check: { valid: true, step: 200, drift: 0 } } }).refusal,
    TokenAlreadyActivated)
})

t.test(`activation: wrong codes are recorded; after ${MAX_ACTIVATION_FAILURES} even a right one is refused`, async (t) => {
  let state = given(imported, assigned)
  for (let i = 0; i < MAX_ACTIVATION_FAILURES; i++) {
    const d = decide(state, { type: 'ActivateToken', data: { userId: 'alice', name: 'k', check: { valid: false } } })
    t.type(d.refusal, WrongCode)
    t.same(d.events, [{ type: 'TokenActivationFailed', data: { serial, userId: 'alice', reason: 'wrong-code' } }])
    state = evolve(state, d.events[0]!, T0)
  }
  const right = decide(state, { type: 'ActivateToken', data: { userId: 'alice', name: 'k', check: { valid: true, step: 9, drift: 0 } } })
  t.type(right.refusal, TooManyAttempts)
  t.same(right.events, [])
})

t.test('verification: a right code is accepted once; its step or an earlier one is a replay', async (t) => {
  const state = given(imported, assigned, activated)
  const ok = decide(state, verify({ valid: true, step: 101, drift: 0 }))
  t.same(ok.events, [{ type: 'OtpVerified', data: { serial, userId: 'alice', step: 101, drift: 0, relyingApplication: 'payroll', level: 'mfa' } }])
  const after = evolve(state, ok.events[0]!, T0)
  for (const step of [101, 100, 50]) {
    const replay = decide(after, verify({ valid: true, step, drift: 0 }))
    t.type(replay.refusal, WrongCode)
    t.same(replay.events, [{ type: 'OtpRejected', data: { serial, userId: 'alice', reason: 'replayed', failures: 1 } }])
  }
})

t.test('verification: a success stores the drift, so the window follows the token', async (t) => {
  const d = decide(given(imported, assigned, activated), verify({ valid: true, step: 103, drift: 1 }))
  t.equal(evolve(given(imported, assigned, activated), d.events[0]!, T0).drift, 1)
})

t.test('verification: the 10th wrong code locks the token for 15 minutes, and the lock refuses a right code', async (t) => {
  let state = given(imported, assigned, activated)
  for (let i = 1; i < 10; i++) {
    const d = decide(state, verify({ valid: false }))
    t.same(d.events.map((e) => e.type), ['OtpRejected'])
    state = evolve(state, d.events[0]!, T0)
  }
  t.equal(state.failures, 9)
  const tenth = decide(state, verify({ valid: false }))
  t.type(tenth.refusal, TokenLocked)
  t.same(tenth.events.map((e) => e.type), ['OtpRejected', 'TokenLocked'])
  t.match(tenth.events[1]!.data, { until: '2026-11-22T10:15:00.000Z', failures: 10, lockCount: 1 })
  state = tenth.events.reduce((s, e) => evolve(s, e, T0), state)

  const during = decide(state, verify({ valid: true, step: 101, drift: 0 }, new Date('2026-11-22T10:14:59Z')))
  t.type(during.refusal, TokenLocked, 'a right code is refused while locked')
  t.same(during.events, [{ type: 'OtpRejected', data: { serial, userId: 'alice', reason: 'locked', failures: 0 } }])
  state = evolve(state, during.events[0]!, T0)
  t.equal(state.failures, 0, 'a refusal while locked does not count')

  const afterLock = decide(state, verify({ valid: true, step: 131, drift: 0 }, new Date('2026-11-22T10:15:00Z')))
  t.same(afterLock.events.map((e) => e.type), ['OtpVerified'], 'the lock runs out by time')
  const unlocked = evolve(state, afterLock.events[0]!, new Date('2026-11-22T10:15:00Z'))
  t.match(unlocked, { failures: 0, lockCount: 0, lockedUntil: null }, 'a success resets the count and the doubling')
})

t.test('verification: a second lock without a success in between lasts twice as long', async (t) => {
  let state = given(imported, assigned, activated)
  const lockAt = (now: Date) => {
    for (let i = 0; i < 10; i++) {
      const d = decide(state, verify({ valid: false }, now))
      state = d.events.reduce((s, e) => evolve(s, e, now), state)
      if (d.refusal instanceof TokenLocked) return d.events[1]!.data as { until: string; lockCount: number }
    }
    throw new Error('did not lock')
  }
  t.match(lockAt(T0), { until: '2026-11-22T10:15:00.000Z', lockCount: 1 })
  t.match(lockAt(new Date('2026-11-22T10:20:00Z')), { until: '2026-11-22T10:50:00.000Z', lockCount: 2 })
})

t.test("verification: a token that is not the user's active one is unavailable, with no event", async (t) => {
  for (const [state, userId] of [[given(imported, assigned, activated), 'bob'], [given(imported, assigned), 'alice'], [given(imported), 'alice']] as const) {
    const d = decide(state, verify({ valid: true, step: 200, drift: 0 }, T0, userId))
    t.type(d.refusal, SerialUnavailable)
    t.same(d.events, [])
  }
})
