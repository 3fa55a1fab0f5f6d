// Relying applications: registered by an operator, events on client-<id>.
// - A client id is 3 to 64 letters, digits, '.', '_' or '-'.
// - Redirect URIs are absolute https URLs (http only for localhost), without fragments; matched exactly.
// - A public client (a browser or native app) has no secret and must use PKCE.

export type ClientEvent =
  | { type: 'ClientRegistered'; data: { clientId: string; name: string; redirectUris: string[]; public: boolean } }
  /** An admin changed its name or redirect URIs. */
  | { type: 'ClientChanged'; data: { clientId: string; name: string; redirectUris: string[] } }
  /** A new secret replaced the old one (which no longer works); the secret itself is never recorded. */
  | { type: 'ClientSecretRotated'; data: { clientId: string } }
  /** Removed for good: it can no longer sign anyone in; its history stays. */
  | { type: 'ClientDeleted'; data: { clientId: string } }

export const CLIENT_EVENT_TYPES = ['ClientRegistered', 'ClientChanged', 'ClientSecretRotated', 'ClientDeleted'] as const

export interface ClientState {
  clientId: string
  exists: boolean
  name: string
  redirectUris: string[]
  public: boolean
  version: number
}

export class InvalidClient extends Error {
  override name = 'InvalidClient'
  statusCode = 422
}

export class ClientAlreadyExists extends Error {
  override name = 'ClientAlreadyExists'
  statusCode = 409
  constructor(readonly clientId: string) {
    super(`a relying application ${clientId} already exists`)
  }
}

export function clientStream(clientId: string): string {
  return `client-${clientId}`
}

export function initialClientState(clientId: string): ClientState {
  return { clientId, exists: false, name: '', redirectUris: [], public: false, version: 0 }
}

export function evolveClient(state: ClientState, event: ClientEvent): ClientState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'ClientRegistered':
      return { ...next, exists: true, name: event.data.name, redirectUris: event.data.redirectUris, public: event.data.public }
    case 'ClientChanged':
      return { ...next, name: event.data.name, redirectUris: event.data.redirectUris }
    case 'ClientSecretRotated':
      return next
    case 'ClientDeleted':
      return { ...next, exists: false }
    default: {
      const unknown: never = event
      throw new Error(`unknown client event ${String((unknown as { type: string }).type)}`)
    }
  }
}

export class UnknownClient extends Error {
  override name = 'UnknownClient'
  statusCode = 404
  constructor(readonly clientId: string) {
    super(`no relying application ${clientId}`)
  }
}

function checkName(name: string, clientId: string): string {
  const trimmed = name.replace(/\s+/g, ' ').trim() || clientId
  if (trimmed.length > 100 || /\p{Cc}/u.test(trimmed)) throw new InvalidClient('the name must be at most 100 printable characters')
  return trimmed
}

/** An admin changes a relying application's name or redirect URIs (at least one, each as at registration). */
export function decideChangeClient(state: ClientState, input: { name: string; redirectUris: string[] }): ClientEvent[] {
  if (!state.exists) throw new UnknownClient(state.clientId)
  if (input.redirectUris.length === 0) throw new InvalidClient('a relying application needs at least one redirect URI')
  const name = checkName(input.name, state.clientId)
  const redirectUris = [...new Set(input.redirectUris.map(checkRedirectUri))]
  if (name === state.name && JSON.stringify(redirectUris) === JSON.stringify(state.redirectUris)) return []
  return [{ type: 'ClientChanged', data: { clientId: state.clientId, name, redirectUris } }]
}

/** A new secret for a confidential client (a public one has none). */
export function decideRotateSecret(state: ClientState): ClientEvent[] {
  if (!state.exists) throw new UnknownClient(state.clientId)
  if (state.public) throw new InvalidClient(`${state.clientId} is a public client: it has no secret`)
  return [{ type: 'ClientSecretRotated', data: { clientId: state.clientId } }]
}

export function decideDeleteClient(state: ClientState): ClientEvent[] {
  if (!state.exists) throw new UnknownClient(state.clientId)
  return [{ type: 'ClientDeleted', data: { clientId: state.clientId } }]
}

function checkRedirectUri(uri: string): string {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new InvalidClient(`redirect URI "${uri}" is not an absolute URL`)
  }
  const local = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    throw new InvalidClient(`redirect URI "${uri}" must use https (http is allowed for localhost only)`)
  }
  if (url.hash) throw new InvalidClient(`redirect URI "${uri}" must not have a fragment`)
  return uri
}

export function decideRegisterClient(
  state: ClientState,
  input: { clientId: string; name: string; redirectUris: string[]; public: boolean },
): ClientEvent[] {
  if (!/^[A-Za-z0-9._-]{3,64}$/.test(input.clientId)) {
    throw new InvalidClient("a client id is 3 to 64 letters, digits, '.', '_' or '-'")
  }
  if (input.redirectUris.length === 0) throw new InvalidClient('a relying application needs at least one --redirect-uri')
  const name = checkName(input.name, input.clientId)
  if (state.exists) throw new ClientAlreadyExists(input.clientId)
  return [{ type: 'ClientRegistered', data: { clientId: input.clientId, name, redirectUris: input.redirectUris.map(checkRedirectUri), public: input.public } }]
}
