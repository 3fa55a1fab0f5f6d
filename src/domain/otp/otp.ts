// One-time password checks: TOTP (RFC 6238) and HOTP (RFC 4226) on otplib with Node's crypto.
// A check returns a result, never throws: { valid, step, drift }. Time comes in as an argument.
import { createGuardrails } from '@otplib/core'
import { verifySync as verifyHotp } from '@otplib/hotp'
import { NodeCryptoPlugin } from '@otplib/plugin-crypto-node'
import { verifySync as verifyTotp } from '@otplib/totp'

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512'

export interface OtpParams {
  kind: 'totp' | 'hotp'
  algorithm: OtpAlgorithm
  digits: 6 | 8
  /** TOTP time step in seconds; ignored for HOTP. */
  period: number | null
}

export type OtpCheck =
  /** step: the TOTP time step or HOTP counter that matched; drift: steps from the expected one. */
  | { valid: true; step: number; drift: number }
  | { valid: false }

const crypto = new NodeCryptoPlugin()
// Hardware tokens ship 10- and 20-byte seeds (RFC 4226 asks for at least 128 bits, many fobs have 80);
// Entra accepts Base32 secrets of up to 128 characters (80 bytes).
// MAX_WINDOW counts steps across the whole window: an admin resync searches 1000 either way.
const guardrails = createGuardrails({ MIN_SECRET_BYTES: 10, MAX_SECRET_BYTES: 128, MAX_WINDOW: 2002 })
const CODE = /^\d{6}$|^\d{8}$/

export function timeStep(nowSeconds: number, period: number): number {
  return Math.floor(nowSeconds / period)
}

/**
 * TOTP: does `code` match a time step within `window` steps of now, shifted by the token's known drift?
 * `drift` in the result is relative to the unshifted current step, so it can be stored as the new drift.
 */
export function checkTotp(
  seed: Uint8Array,
  params: OtpParams,
  code: string,
  nowSeconds: number,
  window: number,
  knownDrift = 0,
): OtpCheck {
  if (!CODE.test(code) || code.length !== params.digits || !params.period) return { valid: false }
  const period = params.period
  try {
    const result = verifyTotp({
      secret: seed,
      token: code,
      crypto,
      guardrails,
      algorithm: params.algorithm.toLowerCase() as 'sha1',
      digits: params.digits,
      period,
      epoch: nowSeconds + knownDrift * period,
      epochTolerance: window * period,
    })
    if (!result.valid) return { valid: false }
    return { valid: true, step: result.timeStep, drift: result.timeStep - timeStep(nowSeconds, period) }
  } catch {
    return { valid: false }
  }
}

/** HOTP: does `code` match a counter from `counter` to `counter + lookAhead`? step = the matched counter. */
export function checkHotp(seed: Uint8Array, params: OtpParams, code: string, counter: number, lookAhead: number): OtpCheck {
  if (!CODE.test(code) || code.length !== params.digits) return { valid: false }
  try {
    const result = verifyHotp({
      secret: seed,
      token: code,
      crypto,
      guardrails,
      algorithm: params.algorithm.toLowerCase() as 'sha1',
      digits: params.digits,
      counter,
      counterTolerance: [0, lookAhead],
    })
    if (!result.valid) return { valid: false }
    return { valid: true, step: counter + result.delta, drift: result.delta }
  } catch {
    return { valid: false }
  }
}
