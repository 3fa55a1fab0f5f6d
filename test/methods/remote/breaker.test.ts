// The per-service circuit breaker, on a clock the test moves.
import t from 'tap'
import { Breaker, FAILURES_TO_OPEN, PAUSE_MS, PROBE_MS } from '../../../src/methods/remote/breaker.js'

t.test('it opens after repeated failures, lets one probe through, and closes on an answer', async (t) => {
  let now = 1_000_000
  const b = new Breaker(() => now)
  for (let i = 0; i < FAILURES_TO_OPEN - 1; i++) b.failed()
  t.equal(b.pausedFor(), 0, 'still closed one failure short')
  b.failed()
  t.equal(b.pausedFor(), PAUSE_MS, 'open: paused for the whole pause')
  now += PAUSE_MS
  t.equal(b.pausedFor(), 0, 'the probe goes')
  t.ok(b.pausedFor() > 0, 'no second request while it is out')
  b.answered()
  t.equal(b.pausedFor(), 0, 'closed again')
  b.failed()
  t.equal(b.pausedFor(), 0, 'and counting from zero')
})

t.test('a probe that fails opens it again; one that never reports back frees its turn', async (t) => {
  let now = 0
  const b = new Breaker(() => now)
  for (let i = 0; i < FAILURES_TO_OPEN; i++) b.failed()
  now += PAUSE_MS
  t.equal(b.pausedFor(), 0, 'the probe goes')
  b.failed()
  t.equal(b.pausedFor(), PAUSE_MS, 'its failure opens it for a whole pause again')
  now += PAUSE_MS
  t.equal(b.pausedFor(), 0, 'the next probe goes, and never reports back')
  now += PROBE_MS - 1
  t.ok(b.pausedFor() > 0)
  now += 1
  t.equal(b.pausedFor(), 0, 'after PROBE_MS another probe may go')
})
