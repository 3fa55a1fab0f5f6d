// The database's tables, typed once. One interface per table; queries take `db` or `trx` first.
import type { ColumnType, Generated, Kysely, Transaction } from 'kysely'
import type { TokenSecretsTable, TokensTable } from './tokens.js'
import type { PoliciesTable, PolicyAssignmentsTable } from './policies.js'
import type { UserCredentialsTable, UsersTable } from './users.js'
import type { GatewaySessionsTable } from './sessions.js'
import type { SignInEndsTable } from '../oidc/sign-in-ends.js'
import type { RemoteCodesTable, RemoteServiceSecretsTable, RemoteServicesTable } from '../methods/remote/projection.js'

export interface EventsTable {
  position: Generated<string>
  stream_id: string
  stream_version: number
  type: string
  data: unknown
  metadata: unknown
  recorded_at: Generated<Date>
  tx_id: Generated<string>
  hash: ColumnType<Buffer, never, never>
}

export interface SubscriptionCheckpointsTable {
  name: string
  tx_id: string
  position: string | number
  updated_at: Generated<Date>
}

export interface AuditIndexTable {
  position: string | number
  tx_id: string
  stream_id: string
  stream_version: number
  type: string
  actor_type: string
  actor_id: string
  correlation_id: string
  user_id: string | null
  relying_application: string | null
  recorded_at: Date
}

export interface StreamsTable {
  stream_id: string
  category: string
  version: number
  last_type: string
  created_at: Date
  updated_at: Date
}

export interface EventTypeStatsTable {
  type: string
  count: string | number
  first_recorded_at: Date
  last_recorded_at: Date
}

export interface ApiKeysTable {
  id: string
  name: string
  role: string
  secret_hash: Buffer
  created_at: Date
  revoked_at: Date | null
}

export interface OidcPayloadsTable {
  type: string
  id: string
  payload: unknown
  grant_id: string | null
  user_code: string | null
  uid: string | null
  expires_at: Date | null
  consumed_at: Date | null
}

export interface ClientsTable {
  client_id: string
  name: string
  redirect_uris: string[]
  public: boolean
  deleted: boolean
  created_at: Date
  version: number
}

export interface ClientSecretsTable {
  client_id: string
  secret_hash: string
}

export interface SigningKeysTable {
  kid: string
  alg: string
  public_jwk: unknown
  key_id: string
  nonce: Buffer
  ciphertext: Buffer
  created_at: Generated<Date>
  retired_at: Date | null
}

export interface UpstreamLinksTable {
  issuer: string
  subject: string
  user_id: string
  linked_at: Date
}

export interface TemporaryCodesTable {
  user_id: string
  code_hash: Buffer
  one_time: boolean
  expires_at: Date
  used_at: Date | null
}

export interface Database {
  events: EventsTable
  subscription_checkpoints: SubscriptionCheckpointsTable
  streams: StreamsTable
  audit_index: AuditIndexTable
  event_type_stats: EventTypeStatsTable
  tokens: TokensTable
  token_secrets: TokenSecretsTable
  users: UsersTable
  user_credentials: UserCredentialsTable
  api_keys: ApiKeysTable
  oidc_payloads: OidcPayloadsTable
  clients: ClientsTable
  client_secrets: ClientSecretsTable
  signing_keys: SigningKeysTable
  upstream_links: UpstreamLinksTable
  temporary_codes: TemporaryCodesTable
  policies: PoliciesTable
  policy_assignments: PolicyAssignmentsTable
  gateway_sessions: GatewaySessionsTable
  sign_in_ends: SignInEndsTable
  remote_services: RemoteServicesTable
  remote_service_secrets: RemoteServiceSecretsTable
  remote_codes: RemoteCodesTable
}

export type Db = Kysely<Database>
export type Executor = Kysely<Database> | Transaction<Database>
