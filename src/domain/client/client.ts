// Relying applications: registered by an operator, events on client-<id>.
// - A client id is 3 to 64 letters, digits, '.', '_' or '-'.
// - Redirect URIs are absolute https URLs (http only for localhost), without fragments; matched exactly.
// - A public client (a browser or native app) has no secret and must use PKCE.

export type ClientEvent = {
  type: 'ClientRegistered'
  data: { clientId: string; name: string; redirectUris: string[]; public: boolean }
}

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
}

export class ClientAlreadyExists extends Error {
  override name = 'ClientAlreadyExists'
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
  switch (event.type) {
    case 'ClientRegistered':
      return { ...state, exists: true, name: event.data.name, redirectUris: event.data.redirectUris, public: event.data.public, version: state.version + 1 }
    default: {
      const unknown: never = event.type
      throw new Error(`unknown client event ${String(unknown)}`)
    }
  }
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
  const name = input.name.trim() || input.clientId
  if (name.length > 100) throw new InvalidClient('the name must be at most 100 characters')
  if (state.exists) throw new ClientAlreadyExists(input.clientId)
  return [{ type: 'ClientRegistered', data: { clientId: input.clientId, name, redirectUris: input.redirectUris.map(checkRedirectUri), public: input.public } }]
}
