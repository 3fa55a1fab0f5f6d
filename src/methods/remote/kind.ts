// Remote credentials (Defender's VIP proxy, privacyIDEA's RADIUS token): codes that another service checks,
// over SOAP with mutual TLS (vip.ts) or RADIUS (radius.ts). Only an admin gives one (credentials.ts), naming
// the service and the credential's id there; there is no seed on this side. Used to move users from another
// OTP server one at a time, without issuing new tokens.
import type { MethodKind } from '../kind.js'

export const remoteCredential: MethodKind = {
  kind: 'remote',
  policyMethod: 'remote',
  label: 'Security code',
  description: 'A code from the token or app your organization gave you before, checked by the service that issued it.',
  addPath: null,
  owns: (token) => token.kind === 'remote',
  verification: 'remote',
  restricted: false,
  // RFC 8176: a one-time password; whether its key is in hardware or software is the other service's to know.
  amr: ['otp'],
  // Named by its id at the service, which its holder knows (printed on a VIP credential, their old user name).
  defaultName: (token) => (token.remoteCredential ? `Security code ${token.remoteCredential}` : 'Security code'),
}
