// How a method shows where a code comes from, on Enter code and Verify your identity: a token by its name,
// or a button that sends a code ("Text +44 ••• ••• 456", "Email a•••@example.com").
import type { TokenState } from '../../domain/token/state.js'
import { kindOf, methodName } from '../index.js'

export interface MethodChoice {
  serial: string
  name: string
  digits: number
  /** For a method codes are sent to: the button's words; null for a token that shows its own codes. */
  send: string | null
  /** NIST SP 800-63B-4 restricts it (or does not count it): it does not answer a request for mfa-unrestricted. */
  restricted: boolean
  lastUsedAt: Date | null
}

export function methodChoice(t: TokenState): MethodChoice {
  const send = t.kind === 'sms' ? `Text ${t.destination}` : t.kind === 'email' ? `Email ${t.destination}` : null
  return { serial: t.serial, name: methodName(t), digits: t.digits, send, restricted: kindOf(t).restricted, lastUsedAt: t.lastUsedAt }
}

/** The methods codes are sent to, the one used last first (the default choice). */
export function sendable(methods: readonly MethodChoice[]): MethodChoice[] {
  return methods.filter((m) => m.send).sort((a, b) => (b.lastUsedAt?.getTime() ?? 0) - (a.lastUsedAt?.getTime() ?? 0))
}
