// Methods that are sent a code: a phone (a text message) and an e-mail address. Added by destination and
// the code sent to it (routes.ts); at sign-in a code is sent when the user asks (challenge.ts) and handed to
// a provider by the delivery pipeline (delivery.ts). NIST SP 800-63B-4 restricts SMS and does not count
// e-mail as an authenticator: both are off in the default policy.
import type { MethodKind } from '../kind.js'

export const phone: MethodKind = {
  kind: 'phone',
  policyMethod: 'sms',
  label: 'Phone',
  description: 'Get a code by text message. Less safe than an app or a hardware token.',
  addPath: '/security-info/phone',
  owns: (token) => token.kind === 'sms',
  verification: 'challenge',
  restricted: true,
  // RFC 8176: confirmation by text message.
  amr: ['sms'],
  defaultName: () => 'Phone',
}

export const email: MethodKind = {
  kind: 'email',
  policyMethod: 'email',
  label: 'Email',
  description: 'Get a code by email. Anyone who can read your mailbox can use it.',
  addPath: '/security-info/email',
  owns: (token) => token.kind === 'email',
  verification: 'challenge',
  restricted: true,
  // RFC 8176: a one-time password, from no particular device.
  amr: ['otp'],
  defaultName: () => 'Email',
}
