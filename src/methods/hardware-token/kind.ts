// Hardware OATH tokens (TOTP and HOTP key fobs) from the inventory: added by serial, name and first code
// (routes/security-info/hardware-token.ts); a code from one proves possession of a hardware key.
import type { MethodKind } from '../kind.js'

export const hardwareToken: MethodKind = {
  kind: 'hardware-token',
  policyMethod: 'hardware',
  label: 'Hardware token',
  description: 'A key fob that shows a code. You need its serial number, on its back.',
  addPath: '/security-info/hardware-token/serial',
  owns: (token) => token.kind === 'totp' || token.kind === 'hotp',
  verification: 'seed',
  restricted: false,
  // RFC 8176: a one-time password, from a hardware-secured key.
  amr: ['otp', 'hwk'],
  defaultName: (token) => [token.manufacturer, token.model].filter(Boolean).join(' ') || 'Hardware token',
}
