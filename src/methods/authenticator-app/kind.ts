// Authenticator apps (Entra's "Authenticator app", Defender's software token): a TOTP key the gateway
// makes, shown once as a QR code and in groups of four (setup.ts), proven with the app's first code.
// Set up on Security info (routes.ts) or from an activation code an admin asked for (activation-codes.ts).
// A code from one proves possession of a key kept in software.
import type { MethodKind } from '../kind.js'

export const authenticatorApp: MethodKind = {
  kind: 'authenticator-app',
  policyMethod: 'app',
  label: 'Authenticator app',
  description: 'Use an app on your phone or computer, such as Microsoft Authenticator or Google Authenticator.',
  addPath: '/security-info/authenticator-app',
  owns: (token) => token.kind === 'software',
  verification: 'seed',
  restricted: false,
  // RFC 8176: a one-time password, from a software-secured key.
  amr: ['otp', 'swk'],
  defaultName: () => 'Authenticator app',
}
