import t from 'tap'
import { checkHotp, checkTotp } from '../../src/domain/otp/otp.js'
import { hotpAt, totpAt } from '../helpers/oathtool.js'
import { RFC4226_HOTP, RFC4226_SECRET, RFC6238_SEEDS, RFC6238_TOTP } from '../fixtures/rfc-vectors.js'

t.test('every RFC 6238 appendix B vector verifies at its time, for SHA1, SHA256 and SHA512', async (t) => {
  for (const v of RFC6238_TOTP) {
    for (const algorithm of ['SHA1', 'SHA256', 'SHA512'] as const) {
      const r = checkTotp(RFC6238_SEEDS[algorithm], { kind: 'totp', algorithm, digits: 8, period: 30 }, v[algorithm], v.time, 0)
      t.same(r, { valid: true, step: Math.floor(v.time / 30), drift: 0 }, `${algorithm} at ${v.time}`)
    }
  }
})

t.test('a TOTP code is accepted within the window and reports its drift; outside it is not', async (t) => {
  const p = { kind: 'totp', algorithm: 'SHA1', digits: 8, period: 30 } as const
  const v = RFC6238_TOTP[1]! // step 37037036
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, v.SHA1, v.time + 30, 1), { valid: true, step: 37037036, drift: -1 }, 'one step late')
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, v.SHA1, v.time - 30, 1), { valid: true, step: 37037036, drift: 1 }, 'one step early')
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, v.SHA1, v.time + 90, 1), { valid: false }, 'three steps late')
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, v.SHA1, v.time + 90, 1, -3), { valid: true, step: 37037036, drift: -3 },
    'a known drift shifts the window')
})

t.test('a wrong, malformed or wrong-length code is simply not valid', async (t) => {
  const p = { kind: 'totp', algorithm: 'SHA1', digits: 8, period: 30 } as const
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, '94287083', 59, 1), { valid: false })
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, '287082', 59, 1), { valid: false }, '6 digits for an 8-digit token')
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, '9428708a', 59, 1), { valid: false })
  t.same(checkTotp(RFC6238_SEEDS.SHA1, p, '', 59, 1), { valid: false })
})

t.test('RFC 4226 appendix D HOTP values verify at their counters, with look-ahead', async (t) => {
  const p = { kind: 'hotp', algorithm: 'SHA1', digits: 6, period: null } as const
  RFC4226_HOTP.forEach((code, counter) => {
    t.same(checkHotp(RFC4226_SECRET, p, code, counter, 0), { valid: true, step: counter, drift: 0 }, `counter ${counter}`)
  })
  t.same(checkHotp(RFC4226_SECRET, p, RFC4226_HOTP[5]!, 2, 5), { valid: true, step: 5, drift: 3 })
  t.same(checkHotp(RFC4226_SECRET, p, RFC4226_HOTP[1]!, 2, 5), { valid: false }, 'a past counter is not accepted')
})

t.test('a 10-byte hardware seed (below otplib default guardrails) verifies an oathtool code', async (t) => {
  const p = { kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30 } as const
  const code = totpAt('3132333435363738393a', 59)
  t.same(checkTotp(Buffer.from('3132333435363738393a', 'hex'), p, code, 59, 0), { valid: true, step: 1, drift: 0 })
})

t.test('8-digit SHA256 and 60-second tokens match oathtool', async (t) => {
  const seed = '0102030405060708090a0b0c0d0e0f10111213'
  const now = 1_800_000_000
  const sha256 = totpAt(seed, now, { digits: 8, algorithm: 'SHA256' })
  t.match(checkTotp(Buffer.from(seed, 'hex'), { kind: 'totp', algorithm: 'SHA256', digits: 8, period: 30 }, sha256, now, 0), { valid: true })
  const sixty = totpAt(seed, now, { period: 60 })
  t.same(checkTotp(Buffer.from(seed, 'hex'), { kind: 'totp', algorithm: 'SHA1', digits: 6, period: 60 }, sixty, now, 0),
    { valid: true, step: Math.floor(now / 60), drift: 0 })
  t.same(checkHotp(Buffer.from(seed, 'hex'), { kind: 'hotp', algorithm: 'SHA1', digits: 6, period: null }, hotpAt(seed, 7), 5, 3),
    { valid: true, step: 7, drift: 2 })
})
