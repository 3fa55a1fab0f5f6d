// A remote service that checks codes for remote credentials: its events, state and decisions. Pure.
// Stream: remote-service-<id>. What is secret (a PKCS#12 file and its password, a RADIUS shared secret) is
// sealed beside the row (remote_service_secrets), never in an event: the event carries its fingerprint.
export type RemoteProtocol = 'vip' | 'radius'
export const REMOTE_PROTOCOLS: readonly RemoteProtocol[] = ['vip', 'radius']

export interface VipSettings {
  protocol: 'vip'
  /** The Validate endpoint, https. */
  url: string
  /** The CA we trust for the service's certificate (PEM), or null for the system's roots. */
  caPem: string | null
  /** What the PKCS#12 holds, for the admin page: our certificate's subject and when it expires. */
  certificate: { subject: string; notAfter: string }
  timeoutMs: number
}

export interface RadiusSettings {
  protocol: 'radius'
  /** In failover order. */
  servers: { host: string; port: number }[]
  timeoutMs: number
  retries: number
  nasIdentifier: string
}

export type RemoteSettings = VipSettings | RadiusSettings

export type RemoteServiceEvent =
  | { type: 'RemoteServiceConfigured'; data: { id: string; name: string; settings: RemoteSettings; codeLifetimeSeconds: number; secretFingerprint: string } }
  | { type: 'RemoteServiceRemoved'; data: { id: string } }

export const REMOTE_SERVICE_EVENT_TYPES: readonly RemoteServiceEvent['type'][] = ['RemoteServiceConfigured', 'RemoteServiceRemoved']

export const remoteServiceStream = (id: string) => `remote-service-${id}`

export interface RemoteServiceState {
  id: string
  exists: boolean
  name: string
  settings: RemoteSettings | null
  /** How long an accepted code is remembered, so it is not accepted twice (the service's code validity). */
  codeLifetimeSeconds: number
  secretFingerprint: string | null
  version: number
}

export const initialRemoteService = (id: string): RemoteServiceState =>
  ({ id, exists: false, name: '', settings: null, codeLifetimeSeconds: 600, secretFingerprint: null, version: 0 })

export function evolveRemoteService(state: RemoteServiceState, event: RemoteServiceEvent): RemoteServiceState {
  const next = { ...state, version: state.version + 1 }
  switch (event.type) {
    case 'RemoteServiceConfigured':
      return { ...next, exists: true, name: event.data.name, settings: event.data.settings, codeLifetimeSeconds: event.data.codeLifetimeSeconds,
        secretFingerprint: event.data.secretFingerprint }
    case 'RemoteServiceRemoved':
      return { ...next, exists: false }
    default: {
      const unknown: never = event
      throw new Error(`unknown remote service event ${(unknown as { type: string }).type}`)
    }
  }
}

export class RemoteServiceError extends Error {
  override name = 'RemoteServiceError'
}

export class RemoteServiceInUse extends RemoteServiceError {
  override name = 'RemoteServiceInUse'
  constructor(readonly credentials: number) {
    super(`${credentials} ${credentials === 1 ? 'credential uses' : 'credentials use'} this service: revoke ${credentials === 1 ? 'it' : 'them'} first.`)
  }
}

export class UnknownRemoteService extends RemoteServiceError {
  override name = 'UnknownRemoteService'
  constructor(id: string) {
    super(`There is no remote service ${id}.`)
  }
}

export type RemoteServiceCommand =
  | { type: 'ConfigureRemoteService'; data: { name: string; settings: RemoteSettings; codeLifetimeSeconds: number; secretFingerprint: string } }
  /** inUse: live credentials that name it. */
  | { type: 'RemoveRemoteService'; data: { inUse: number } }

/** JSON with its keys sorted: the settings read back from jsonb come in another order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v))
}

/**
 * - Configuring writes the whole configuration again (a change of secret shows as a new fingerprint); the
 *   same configuration again writes nothing.
 * - A service live credentials use is not removed.
 */
export function decideRemoteService(state: RemoteServiceState, command: RemoteServiceCommand): RemoteServiceEvent[] {
  switch (command.type) {
    case 'ConfigureRemoteService': {
      const d = command.data
      const same = state.exists && state.name === d.name && state.codeLifetimeSeconds === d.codeLifetimeSeconds
        && state.secretFingerprint === d.secretFingerprint && canonical(state.settings) === canonical(d.settings)
      return same ? [] : [{ type: 'RemoteServiceConfigured', data: { id: state.id, ...d } }]
    }
    case 'RemoveRemoteService': {
      if (!state.exists) throw new UnknownRemoteService(state.id)
      if (command.data.inUse > 0) throw new RemoteServiceInUse(command.data.inUse)
      return [{ type: 'RemoteServiceRemoved', data: { id: state.id } }]
    }
    default: {
      const unknown: never = command
      throw new Error(`unknown remote service command ${(unknown as { type: string }).type}`)
    }
  }
}
