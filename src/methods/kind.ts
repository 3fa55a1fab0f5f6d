// What every kind of sign-in method says about itself, so that a new kind is a folder of its own and an
// entry in methods/index.ts, not a case in every switch:
// - which policy method allows it, and how it is shown on Security info's list of methods to add;
// - where adding it starts (its own routes) and which tokens are of this kind;
// - how its codes are checked: against a seed kept here, against a challenge sent to it, or by a remote service;
// - what a code from it proves, as RFC 8176 authentication method references.
import type { SignInMethod } from '../domain/policy/events.js'
import type { TokenState } from '../domain/token/state.js'

export interface MethodKind {
  /** The kind's name in URLs and events. */
  kind: string
  /** The security policy method that allows it. */
  policyMethod: SignInMethod
  /** As Security info names it ("Hardware token"). */
  label: string
  /** One line under the label on Add sign-in method. */
  description: string
  /** The first page of adding one, or null when only an admin can give one. */
  addPath: string | null
  /** Which tokens are of this kind. */
  owns(token: Pick<TokenState, 'kind'>): boolean
  /**
   * How a code is checked (commands/tokens.ts codeCheck): `seed`, computed from the key sealed here; `challenge`,
   * compared with the newest code sent to it; `remote`, asked of the service that holds the credential.
   */
  verification: 'seed' | 'challenge' | 'remote'
  /** NIST SP 800-63B-4 restricts it (a text message) or does not count it (e-mail): it does not reach mfa-unrestricted. */
  restricted: boolean
  /** What a verified code proves (RFC 8176), between `pwd` and `mfa` in the ID token's amr. */
  amr: readonly string[]
  /** The name a token of this kind gets when its user gives none. */
  defaultName(token: Pick<TokenState, 'manufacturer' | 'model' | 'remoteCredential'>): string
}
