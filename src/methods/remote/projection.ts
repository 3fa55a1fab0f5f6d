// Inline read model `remote_services`: each remote service's configuration, folded from its stream.
import { stateProjection } from '../../projections/fold.js'
import { evolveRemoteService, initialRemoteService, REMOTE_SERVICE_EVENT_TYPES, type RemoteServiceEvent, type RemoteServiceState, type RemoteSettings } from './service.js'

export interface RemoteServicesTable {
  id: string
  name: string
  protocol: string
  /** jsonb (a JSON text when written). */
  settings: RemoteSettings | string
  code_lifetime_seconds: number
  secret_fingerprint: string | null
  exists: boolean
  version: number
}

export interface RemoteServiceSecretsTable {
  id: string
  key_id: string
  nonce: Buffer
  ciphertext: Buffer
}

export interface RemoteCodesTable {
  credential_key: string
  code_hash: Buffer
  expires_at: Date
}

export function remoteServiceFromRow(r: RemoteServicesTable): RemoteServiceState {
  return { id: r.id, exists: r.exists, name: r.name, settings: typeof r.settings === 'string' ? JSON.parse(r.settings) : r.settings,
    codeLifetimeSeconds: r.code_lifetime_seconds, secretFingerprint: r.secret_fingerprint, version: r.version }
}

export const remoteServicesProjection = stateProjection<RemoteServiceState, RemoteServiceEvent, RemoteServicesTable & Record<string, unknown>>({
  name: 'remote_services',
  table: 'remote_services',
  key: 'id',
  prefix: 'remote-service-',
  handles: REMOTE_SERVICE_EVENT_TYPES,
  initial: initialRemoteService,
  evolve: evolveRemoteService,
  fromRow: remoteServiceFromRow,
  toRow: (s) => ({ id: s.id, name: s.name, protocol: s.settings?.protocol ?? 'vip', settings: JSON.stringify(s.settings ?? {}),
    code_lifetime_seconds: s.codeLifetimeSeconds, secret_fingerprint: s.secretFingerprint, exists: s.exists, version: s.version }),
})
