// Token lifecycle operations for admins, shared by the JSON API and the admin pages, so both enforce
// the same rules and write the same events. Each takes the form's or body's fields as strings.
// - assign: an existing user by user principal name; unassign, disable, enable, unlock: nothing more;
// - revoke: a reason from REVOCATION_REASONS; resync: two consecutive codes of 6 or 8 digits.
import type { FastifyInstance } from 'fastify'
import {
  assignToken, disableToken, enableToken, releaseToken, resyncToken, revokeToken, unassignToken, unlockToken,
} from '../../commands/tokens.js'
import { REVOCATION_REASONS, type RevocationReason } from '../../domain/token/events.js'
import type { TokenState } from '../../domain/token/state.js'
import type { EventMetadata } from '../../event-store/types.js'
import type { PolicyTarget } from '../../domain/policy/events.js'
import { parseGroup } from '../../domain/user/decide.js'
import { findUserByUpn } from '../../read-models/users.js'

export class BadInput extends Error {
  override name = 'BadInput'
  statusCode = 400
}

export class NotFound extends Error {
  override name = 'NotFound'
  statusCode = 404
}

export interface TokenOperation {
  /** The button's label on the token's page. */
  label: string
  /** For a destructive operation: what it does, in words, asked to be confirmed on the admin pages. */
  consequence?: (serial: string, input: Record<string, unknown>) => string
  /** Throws BadInput for a form that cannot be run, before any confirmation is asked. */
  check?: (input: Record<string, unknown>) => void
  run(app: FastifyInstance, serial: string, input: Record<string, unknown>, meta: EventMetadata): Promise<TokenState>
}

const CODE = /^\d{6}$|^\d{8}$/
const field = (input: Record<string, unknown>, name: string) => String(input[name] ?? '').trim()

export const TOKEN_OPERATIONS: Record<string, TokenOperation> = {
  assign: {
    label: 'Assign',
    async run(app, serial, input, meta) {
      const upn = field(input, 'user')
      if (!upn) throw new BadInput('Enter the user principal name of the user to assign the token to.')
      const user = await findUserByUpn(app.db, upn)
      if (!user) throw new NotFound(`no user ${upn}`)
      return assignToken(app.commands, { serial, userId: user.id }, meta)
    },
  },
  unassign: {
    label: 'Unassign',
    consequence: (serial) => `Token ${serial} will be taken from its user and go back to the inventory. If it was one of their sign-in methods, they can no longer sign in with it, and anyone who holds it may claim it.`,
    run: (app, serial, _input, meta) => unassignToken(app.commands, { serial }, meta) },
  /** A token its user removed waits for this before anyone else can claim it. */
  release: {
    label: 'Release to inventory',
    consequence: (serial) => `Token ${serial} was removed by its user. Released, anyone who holds it may add it to their account.`,
    run: (app, serial, _input, meta) => releaseToken(app.commands, { serial }, meta) },
  disable: {
    label: 'Disable',
    consequence: (serial) => `Token ${serial} will refuse every code until it is enabled again: its user cannot sign in with it.`,
    run: (app, serial, _input, meta) => disableToken(app.commands, { serial }, meta) },
  enable: { label: 'Enable', run: (app, serial, _input, meta) => enableToken(app.commands, { serial }, meta) },
  unlock: { label: 'Unlock', run: (app, serial, _input, meta) => unlockToken(app.commands, { serial }, meta) },
  revoke: {
    label: 'Revoke',
    check(input) {
      if (!REVOCATION_REASONS.includes(field(input, 'reason') as RevocationReason)) throw new BadInput(`Choose why the token is revoked: ${REVOCATION_REASONS.join(', ')}.`)
    },
    consequence: (serial, input) => `Token ${serial} will be revoked for good${field(input, 'reason') ? ` (${field(input, 'reason')})` : ''}: its seed is destroyed, it can never be used or assigned again, and its user can no longer sign in with it. Its history stays.`,
    async run(app, serial, input, meta) {
      const reason = field(input, 'reason') as RevocationReason
      if (!REVOCATION_REASONS.includes(reason)) throw new BadInput(`Choose why the token is revoked: ${REVOCATION_REASONS.join(', ')}.`)
      return revokeToken(app.commands, { serial, reason }, meta)
    },
  },
  resync: {
    label: 'Resync',
    async run(app, serial, input, meta) {
      const first = field(input, 'first').replace(/\s/g, '')
      const second = field(input, 'second').replace(/\s/g, '')
      if (!CODE.test(first) || !CODE.test(second)) throw new BadInput('Enter two consecutive codes from the token, 6 or 8 digits each.')
      return resyncToken(app.commands, { serial, first, second }, meta)
    },
  },
}

/** Whom a policy is assigned to: a group by name, or a user by user principal name. */
export async function policyTarget(app: FastifyInstance, input: { kind: 'user' | 'group'; name: string }): Promise<PolicyTarget> {
  if (input.kind === 'group') return { kind: 'group', id: parseGroup(input.name) }
  const user = input.name.trim() ? await findUserByUpn(app.db, input.name) : undefined
  if (!user) throw new NotFound(input.name.trim() ? `No user ${input.name.trim()}.` : 'Enter the user principal name of a user.')
  return { kind: 'user', id: user.id }
}

/** A refused token operation: the status that says why. */
export function refusalStatus(errorName: string): number {
  return ({ UnknownSerial: 404, SerialUnavailable: 404, ResyncFailed: 422, InvalidCredential: 400 } as Record<string, number>)[errorName] ?? 409
}
