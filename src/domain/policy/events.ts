// What happens to a security policy. Stream: policy-<id>. The policy `default` applies to every user
// who has no policy of their own or of a group; until it is first changed, DEFAULT_SETTINGS stand for it.

/** Sign-in methods a policy can allow; the list grows as the gateway learns new kinds. */
export type SignInMethod = 'hardware' | 'app' | 'sms' | 'email' | 'remote' | 'temporary_code'
export const SIGN_IN_METHODS: readonly SignInMethod[] = ['hardware', 'app', 'sms', 'email', 'remote', 'temporary_code']

export interface PolicySettings {
  /** Methods users may add and sign in with. */
  methods: SignInMethod[]
  /** OTP lengths accepted, at activation and at sign-in. */
  digits: (6 | 8)[]
  /** TOTP steps accepted either side of now at sign-in (RFC 6238 section 5.2 recommends one). */
  totpWindow: number
  /** Consecutive wrong codes before a token locks. */
  lockThreshold: number
  /** The first lock's length in seconds; each further lock without a success in between doubles it. */
  lockSeconds: number
  /** Attempts a user may make per minute at adding a method: the serial and code steps, and the code asked first. */
  activationAttemptsPerMinute: number
  /** Hardware and software OTP methods a user may have (Entra: 5). */
  maxMethods: number
  /** The longest validity an admin may give a temporary code. */
  temporaryCodeMaxDays: number
  /**
   * A user who never had a sign-in method may add the first one after their password alone. Off: the first
   * method too needs a temporary code or a token an admin assigned. (A user who had one always needs them.)
   */
  firstMethodWithPassword: boolean
  /** Digits of a code sent by text or e-mail. */
  sentCodeLength: number
  /** Minutes a sent code stays valid (NIST SP 800-63B-4: at most 10). */
  sentCodeMinutes: number
  /** Codes sent per user, and per phone number or address, in an hour (the send budget; wrong codes are the guess budget: lockThreshold). */
  sendsPerHour: number
  /** Days an activation code for a software token stays valid (Defender's portal: 7). */
  activationCodeDays: number
  /** Users may ask for an activation code themselves (Security info, "Request a software token"), as admins can for them. */
  userRequestsSoftwareTokens: boolean
}

export const DEFAULT_SETTINGS: PolicySettings = {
  methods: ['hardware', 'app', 'temporary_code'],
  digits: [6, 8],
  totpWindow: 1,
  lockThreshold: 10,
  lockSeconds: 15 * 60,
  activationAttemptsPerMinute: 10,
  maxMethods: 5,
  temporaryCodeMaxDays: 30,
  firstMethodWithPassword: true,
  sentCodeLength: 6,
  sentCodeMinutes: 5,
  sendsPerHour: 10,
  activationCodeDays: 7,
  userRequestsSoftwareTokens: false,
}

/** Bounds of each number setting: outside them a policy is refused. */
export const SETTING_BOUNDS = {
  totpWindow: [0, 10],
  lockThreshold: [1, 100],
  lockSeconds: [60, 7 * 86_400],
  activationAttemptsPerMinute: [1, 100],
  maxMethods: [1, 20],
  temporaryCodeMaxDays: [1, 90],
  sentCodeLength: [6, 8],
  sentCodeMinutes: [1, 10],
  sendsPerHour: [1, 100],
  activationCodeDays: [1, 30],
} as const satisfies Partial<Record<keyof PolicySettings, readonly [number, number]>>

export type PolicyTarget = { kind: 'user'; id: string } | { kind: 'group'; id: string }

export type PolicyEvent =
  | { type: 'PolicyCreated'; data: { policyId: string; name: string; priority: number; settings: PolicySettings } }
  | { type: 'PolicyChanged'; data: { policyId: string; name: string; priority: number; settings: PolicySettings } }
  | { type: 'PolicyAssigned'; data: { policyId: string; target: PolicyTarget } }
  | { type: 'PolicyUnassigned'; data: { policyId: string; target: PolicyTarget } }
  /** Its users and groups fall back to the next policy that applies to them. */
  | { type: 'PolicyDeleted'; data: { policyId: string } }

export const POLICY_EVENT_TYPES = ['PolicyCreated', 'PolicyChanged', 'PolicyAssigned', 'PolicyUnassigned', 'PolicyDeleted'] as const

export const DEFAULT_POLICY_ID = 'default'

export function policyStream(policyId: string): string {
  return `policy-${policyId}`
}
