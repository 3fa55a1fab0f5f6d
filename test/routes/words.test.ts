// Words pages and the CLI use: plurals, instants, and the code lengths of a user's tokens.
import t from 'tap'
import { codeLength, plural, when } from '../../src/routes/words.js'

t.test('a count takes the plural only when it is not one', async (t) => {
  t.equal(plural(1, 'time step'), '1 time step')
  t.equal(plural(0, 'token'), '0 tokens')
  t.equal(plural(-1, 'time step'), '-1 time steps')
  t.equal(plural(2, 'entry', 'entries'), '2 entries')
})

t.test('an instant reads as a date and a time in UTC, to the minute', async (t) => {
  t.equal(when(new Date('2026-12-03T14:05:59.999Z')), '3 Dec 2026, 14:05 UTC')
})

t.test("a code's length is the one the user's tokens show", async (t) => {
  t.equal(codeLength([6, 6]), '6-digit')
  t.equal(codeLength([8]), '8-digit')
  t.equal(codeLength([8, 6]), '6- or 8-digit')
  t.equal(codeLength([]), '6- or 8-digit', 'with no token known, either')
})
