// Every kind of sign-in method the gateway knows, in the order Add sign-in method lists them.
import type { TokenState } from '../domain/token/state.js'
import { authenticatorApp } from './authenticator-app/kind.js'
import { hardwareToken } from './hardware-token/kind.js'
import { remoteCredential } from './remote/kind.js'
import { email, phone } from './sent-code/kind.js'
import type { MethodKind } from './kind.js'

export type { MethodKind } from './kind.js'

export const METHOD_KINDS: readonly MethodKind[] = [authenticatorApp, hardwareToken, phone, email, remoteCredential]

/** The kind a token is of (every token is one). */
export function kindOf(token: Pick<TokenState, 'kind'>): MethodKind {
  const found = METHOD_KINDS.find((k) => k.owns(token))
  if (!found) throw new Error(`no method kind for a ${token.kind} token`)
  return found
}

/** A token's name as its user sees it. */
export function methodName(token: Pick<TokenState, 'kind' | 'name' | 'manufacturer' | 'model' | 'remoteCredential'>): string {
  return token.name ?? kindOf(token).defaultName(token)
}
