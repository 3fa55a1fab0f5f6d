// Admin pages: token search and detail with the lifecycle operations, users (groups, effective policy,
// temporary code), security policies. For users with the admin role who entered a code within the hour.
// - GET renders; POST runs the same operation as the JSON API (operations.ts, commands/*) with the admin
//   as actor, then redirects (303) to the page with a notice, or re-renders it with the reason (4xx).
// - A refused operation writes nothing; a temporary code is shown once, on the response to its POST.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { assignPolicy, deletePolicy, setPolicy, unassignPolicy } from '../../commands/policies.js'
import { issueTemporaryCode } from '../../commands/temporary-codes.js'
import { formatActivationCode, liveActivationCode, requestActivationCode, revokeActivationCodes } from '../../methods/authenticator-app/activation-codes.js'
import { changeGroup, grantRole, revokeRole, setUserDisabled } from '../../commands/users.js'
import { deleteUser, resetPassword, TEMPORARY_PASSWORD_HOURS } from '../../commands/accounts.js'
import { contactOf, setUserContact } from '../../commands/contacts.js'
import { programSentCodeMethod } from '../../methods/sent-code/challenge.js'
import { assignRemoteCredential } from '../../methods/remote/credentials.js'
import { listRemoteServices } from '../../methods/remote/services.js'
import { RemoteServiceError } from '../../methods/remote/service.js'
import { kindOf } from '../../methods/index.js'
import type { TokenState } from '../../domain/token/state.js'
import { deleteClient, registerClient, rotateClientSecret, updateClient } from '../../commands/clients.js'
import multipart from '@fastify/multipart'
import { importTokens } from '../../commands/import-tokens.js'
import { parseInventory } from '../../import/index.js'
import { INVENTORY_FORMATS, UnusableFile, type InventoryFormat } from '../../import/types.js'
import { spool, TooLarge } from '../../import/spool.js'
import { listClients, loadClient } from '../../read-models/clients.js'
import type { Role } from '../../domain/user/events.js'
import { describedReplay } from '../../audit/state-as-of.js'
import { DEFAULT_SETTINGS, SETTING_BOUNDS, SIGN_IN_METHODS, type PolicySettings, type SignInMethod } from '../../domain/policy/events.js'
import { TokenError } from '../../domain/token/errors.js'
import { REVOCATION_REASONS } from '../../domain/token/events.js'
import { effectivePolicy, listPolicies, loadPolicy } from '../../read-models/policies.js'
import { loadToken, searchTokens, tokensOfUser } from '../../read-models/tokens.js'
import { findUserByUpn, listUsers, upnsOf } from '../../read-models/users.js'
import { requireStaff, signedIn } from '../guards.js'
import { page } from '../render.js'
import { plural } from '../words.js'
import { BadInput, NotFound, policyTarget, refusalStatus, TOKEN_OPERATIONS } from './operations.js'
import { multipartCsrfAccepted } from '../form-shape.js'

type Form = Record<string, string | string[] | undefined>

const STATUSES = ['inventory', 'assigned', 'active', 'revoked']
/** Events shown on a token's page, newest first. */
const HISTORY_SHOWN = 100
const METHOD_LABELS: Record<SignInMethod, string> = {
  hardware: 'Hardware token', app: 'Authenticator app', sms: 'Phone (text message; restricted by NIST SP 800-63B-4)',
  email: 'Email (not an authenticator under NIST SP 800-63B-4: a mailbox is not something the user holds)', remote: 'Remote credential (a VIP or RADIUS service checks the code)', temporary_code: 'Temporary code',
}
const SETTING_LABELS: Record<keyof typeof SETTING_BOUNDS, string> = {
  totpWindow: 'Time steps accepted either side of now',
  lockThreshold: 'Wrong codes before the token locks',
  lockSeconds: 'First lock period (seconds; doubles on each further lock)',
  activationAttemptsPerMinute: 'Activation attempts per user per minute',
  maxMethods: 'Authenticator methods per user at most',
  temporaryCodeMaxDays: 'Longest temporary code validity (days)',
  sentCodeLength: 'Digits of a code sent by text or e-mail',
  sentCodeMinutes: 'Minutes a sent code is valid',
  sendsPerHour: 'Codes sent per user, and per number or address, in an hour',
  activationCodeDays: 'Days an activation code for a software token is valid',
}

/** The status and message of an error a person can act on (a 4xx); null for anything else (a fault). */
function refusal(error: unknown): { status: number; message: string } | null {
  if (error instanceof TokenError) return { status: refusalStatus(error.name), message: error.message }
  const status = (error as { statusCode?: number }).statusCode
  return status && status < 500 ? { status, message: (error as Error).message } : null
}

const list = (value: string | string[] | undefined) => (Array.isArray(value) ? value : value ? [value] : [])

/** A policy form's fields as settings; a number field left blank or not a number is refused by name. */
function settingsFromForm(form: Form): PolicySettings {
  const numbers = Object.fromEntries(Object.keys(SETTING_BOUNDS).map((name) => {
    const raw = String(form[name] ?? '').trim()
    if (!/^\d+$/.test(raw)) throw new BadInput(`${SETTING_LABELS[name as keyof typeof SETTING_BOUNDS]}: enter a whole number.`)
    return [name, Number(raw)]
  }))
  return {
    ...DEFAULT_SETTINGS,
    ...numbers,
    methods: list(form.methods) as SignInMethod[],
    digits: list(form.digits).map(Number) as (6 | 8)[],
    firstMethodWithPassword: form.firstMethodWithPassword === 'on',
    userRequestsSoftwareTokens: form.userRequestsSoftwareTokens === 'on',
  }
}

export default async function adminPageRoutes(app: FastifyInstance): Promise<void> {
  const now = () => app.commands.now().getTime()
  const actor = (request: FastifyRequest) => app.eventMetadata(request, { type: 'admin', id: signedIn(request)!.upn })

  await app.register(async (admin) => {
    admin.addHook('preHandler', requireStaff(app.db, 'admin', now))

    admin.get('/admin', async (_request, reply) => reply.redirect('/admin/tokens', 303))

    // Tokens: search, detail, operations.
    admin.get<{ Querystring: Record<string, string | undefined> }>('/admin/tokens', async (request, reply) => {
      const q = request.query
      const result = await searchTokens(app.db, {
        serial: q.serial?.trim(), status: STATUSES.includes(q.status ?? '') ? q.status : undefined,
        manufacturer: q.manufacturer?.trim() || undefined, model: q.model?.trim() || undefined, after: q.after,
        upn: q.user?.trim() || undefined, limit: 50,
      })
      const nextQuery = result.next ? new URLSearchParams({ ...Object.fromEntries(Object.entries(q).filter(([, v]) => v)) as Record<string, string>, after: result.next }).toString() : null
      return page(request, reply, 'admin/tokens', { title: 'Tokens', values: q, statuses: STATUSES, tokens: result.tokens, nextQuery, now: app.commands.now() })
    })

    async function tokenPage(request: FastifyRequest, reply: FastifyReply, serial: string, extra: { status?: number; error?: string; values?: Form; notice?: string } = {}) {
      const { state: token } = await loadToken(app.db, serial)
      if (token.status === 'absent') return page(request, reply, 'admin/not-found', { title: 'Token not found', message: `No token with serial ${serial}.` }, 404)
      // The latest events only: the page costs the same whatever the token's history (the audit view pages it all).
      const history = (await describedReplay(app.db, `token-${serial}`, { latest: HISTORY_SHOWN })).reverse()
      const owner = token.userId ? (await upnsOf(app.db, [token.userId])).get(token.userId) ?? token.userId : null
      const heldForUpn = token.heldFor ? (await upnsOf(app.db, [token.heldFor])).get(token.heldFor) ?? null : null
      return page(request, reply, 'admin/token', {
        heldForUpn,
        title: `Token ${serial}`, token, owner, history, more: token.version > HISTORY_SHOWN,
        reasons: REVOCATION_REASONS, now: app.commands.now(), error: extra.error, notice: extra.notice, values: extra.values ?? {},
      }, extra.status ?? 200)
    }

    const notices: Record<string, string> = {
      assign: 'The token was assigned.', unassign: 'The token was unassigned and is back in the inventory.', disable: 'The token was disabled.',
      enable: 'The token was enabled.', unlock: 'The token was unlocked and its failure count reset.', revoke: 'The token was revoked and its seed destroyed.',
      resync: 'The token was resynchronised.',
    }

    admin.get<{ Params: { serial: string }; Querystring: { done?: string } }>('/admin/tokens/:serial', async (request, reply) =>
      tokenPage(request, reply, request.params.serial, { notice: notices[request.query.done ?? ''] }))

    admin.post<{ Params: { serial: string; operation: string }; Body: Form }>('/admin/tokens/:serial/:operation', async (request, reply) => {
      const { serial, operation } = request.params
      const op = Object.hasOwn(TOKEN_OPERATIONS, operation) ? TOKEN_OPERATIONS[operation] : undefined
      if (!op) return tokenPage(request, reply, serial, { status: 404, error: `There is no operation "${operation}".` })
      // A destructive operation says what it will do and waits for a second, confirmed post.
      const form = request.body ?? {}
      try {
        op.check?.(form)
      } catch (error) {
        const { _csrf, ...values } = form
        return tokenPage(request, reply, serial, { status: 400, error: (error as Error).message, values })
      }
      if (op.consequence && form.confirmed !== 'yes') {
        const { _csrf, ...fields } = form
        return page(request, reply, 'admin/confirm', { title: `${op.label} token ${serial}?`, heading: `${op.label} token ${serial}?`,
          consequence: op.consequence(serial, form), action: request.url, fields, confirm: `Yes, ${op.label.toLowerCase()}`,
          cancel: `/admin/tokens/${encodeURIComponent(serial)}` })
      }
      try {
        await op.run(app, serial, request.body ?? {}, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        // The codes of a failed resync are not kept; the user and reason are.
        const { first: _f, second: _s, _csrf, ...values } = request.body ?? {}
        return tokenPage(request, reply, serial, { status: r.status, error: r.message, values })
      }
      return reply.redirect(`/admin/tokens/${encodeURIComponent(serial)}?done=${operation}`, 303)
    })

    // Users: groups, effective policy, tokens, temporary code.
    // Users: a list searched by name, a page at a time (an exact principal name goes to the user's page).
    admin.get<{ Querystring: { upn?: string; q?: string; after?: string; deleted?: string } }>('/admin/users', async (request, reply) => {
      const upn = request.query.upn?.trim()
      if (upn) {
        const user = await findUserByUpn(app.db, upn)
        if (user) return reply.redirect(`/admin/users/${encodeURIComponent(user.upn)}`, 303)
        return page(request, reply, 'admin/users', { title: 'Users', values: { upn }, errors: { upn: `No user ${upn}.` }, users: [], next: null }, 404)
      }
      const q = String(request.query.q ?? '').trim().slice(0, 100)
      const { users, next } = await listUsers(app.db, { q, after: typeof request.query.after === 'string' ? request.query.after : undefined, limit: 50 })
      const nextQuery = next ? new URLSearchParams({ ...(q ? { q } : {}), after: next }).toString() : null
      const deleted = typeof request.query.deleted === 'string' ? request.query.deleted.slice(0, 320) : null
      return page(request, reply, 'admin/users', { title: 'Users', values: { q }, users, nextQuery,
        notice: deleted ? `The account of ${deleted} was deleted. Its tokens are held until you release them; its history stays in the audit log.` : undefined })
    })

    async function userPage(request: FastifyRequest, reply: FastifyReply, upn: string, extra: {
      status?: number; error?: string; notice?: string; issued?: { code: string; expiresAt: Date; oneTime: boolean }
      password?: { password: string; expiresAt: Date }; values?: Form
      activation?: { id: string; code: string | null; to: string | null; expiresAt: Date; url: string }
      fieldErrors?: { email?: string; mobile?: string }
    } = {}) {
      const user = await findUserByUpn(app.db, upn)
      if (!user) return page(request, reply, 'admin/not-found', { title: 'User not found', message: `No user ${upn}.` }, 404)
      const [tokens, policy, contact, liveCode, remoteServices] = await Promise.all([tokensOfUser(app.db, user.id), effectivePolicy(app.db, user.id), contactOf(app.db, user.id),
        liveActivationCode(app.db, user.id, app.commands.now()), listRemoteServices(app.db)])
      if (extra.issued || extra.password || extra.activation) reply.header('cache-control', 'no-store')
      return page(request, reply, 'admin/user', {
        title: user.upn, subject: user, tokens, policy, methodLabels: METHOD_LABELS, error: extra.error, notice: extra.notice,
        issued: extra.issued, password: extra.password, activation: extra.activation, liveCode, remoteServices, values: extra.values ?? {}, fieldErrors: extra.fieldErrors ?? {}, contact, tokenLabel: (t: TokenState) => kindOf(t).label,
      }, extra.status ?? 200)
    }

    admin.get<{ Params: { upn: string }; Querystring: { done?: string } }>('/admin/users/:upn', async (request, reply) =>
      userPage(request, reply, request.params.upn, { notice: ({
        joined: 'The user was added to the group.', left: 'The user was removed from the group.', disabled: 'The account was disabled; its sessions ended.',
        enabled: 'The account was enabled.', granted: 'The role was granted.', revoked: 'The role was taken away.',
        contact: 'How the user is reached was saved.', remote: 'The remote credential was given to the user; they were told.', phone: 'A phone method was added for the user; they were told.', email: 'An email method was added for the user; they were told.',
      } as Record<string, string>)[request.query.done ?? ''] }))

    // Import an inventory file (Entra CSV, privacyIDEA OATH CSV) from the page: multipart, streamed into the
    // same import as the CLI and the API, with the same report. The CSRF token is the form's first field,
    // checked before the file is read (the body is not parsed before the handler).
    await admin.register(multipart, { limits: { files: 1, fields: 6, fileSize: app.config.importMaxBytes + 1 } })
    admin.get('/admin/import', async (request, reply) => page(request, reply, 'admin/import', { title: 'Import tokens' }))
    admin.post('/admin/import', { config: { skipCsrf: true } }, async (request, reply) => {
      const again = (status: number, error: string, format = 'entra') => page(request, reply, 'admin/import', { title: 'Import tokens', error, values: { format } }, status)
      if (!request.isMultipart()) return again(400, 'Choose a file to import.')
      const fields: Record<string, string> = {}
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          fields[part.fieldname] = String(part.value)
          continue
        }
        // The file: only after the CSRF token and the format, which the form sends first.
        if (!(await multipartCsrfAccepted(app, request, reply, fields._csrf))) {
          part.file.resume()
          return reply
        }
        const format = (fields.format ?? 'entra') as InventoryFormat
        if (!INVENTORY_FORMATS.includes(format)) return again(400, 'Choose the file\'s format: Entra CSV, privacyIDEA OATH CSV or PSKC.')
        if (!part.filename) return again(400, 'Choose a file to import.', format)
        // An encrypted PSKC file's pre-shared key (hex) or password, from the form's fields before the file.
        const psk = (fields.psk ?? '').trim()
        if (psk && !/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(psk)) return again(400, 'The pre-shared key must be 32, 48 or 64 hex digits.', format)
        if (psk && fields.password) return again(400, 'Give the pre-shared key or the password, not both.', format)
        const secret = { psk: psk ? Buffer.from(psk, 'hex') : undefined, password: fields.password || undefined }
        // The whole file first: one over the limit is refused before a row is written.
        let upload
        try {
          upload = await spool(part.file, app.config.importMaxBytes)
        } catch (error) {
          if (error instanceof TooLarge || (error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
            return again(413, new TooLarge(app.config.importMaxBytes).message, format)
          }
          throw error
        }
        try {
          const report = await importTokens(app.commands, parseInventory(format, upload.open(), secret), actor(request), { format })
          return page(request, reply, 'admin/import', { title: 'Import tokens', report, filename: part.filename, values: { format } })
        } catch (error) {
          if (error instanceof UnusableFile) return again(400, error.message, format)
          throw error
        } finally {
          await upload.remove()
        }
      }
      return again(400, 'Choose a file to import.', fields.format)
    })

    // Relying applications: listed, added (the secret shown once), changed, a new secret (confirmed first,
    // shown once), deleted (confirmed first). Each an event.
    const lines = (value: unknown) => String(value ?? '').split(/\s+/).map((l) => l.trim()).filter(Boolean)
    async function clientsPage(request: FastifyRequest, reply: FastifyReply, extra: { status?: number; error?: string; notice?: string; values?: Form } = {}) {
      return page(request, reply, 'admin/clients', { title: 'Relying applications', clients: await listClients(app.db), error: extra.error,
        notice: extra.notice, values: extra.values ?? {} }, extra.status ?? 200)
    }
    async function clientPage(request: FastifyRequest, reply: FastifyReply, clientId: string, extra: { status?: number; error?: string; notice?: string; values?: Form; secret?: string } = {}) {
      const client = await loadClient(app.db, clientId)
      if (!client.exists) return page(request, reply, 'admin/not-found', { title: 'Not found', message: `No relying application ${clientId}.` }, 404)
      return page(request, reply, 'admin/client', { title: client.name, client, error: extra.error, notice: extra.notice, values: extra.values ?? {}, secret: extra.secret },
        extra.status ?? 200)
    }
    admin.get<{ Querystring: { done?: string } }>('/admin/clients', async (request, reply) =>
      clientsPage(request, reply, { notice: request.query.done === 'deleted' ? 'The relying application was deleted.' : undefined }))
    admin.post<{ Body: Form }>('/admin/clients', async (request, reply) => {
      const form = request.body ?? {}
      try {
        const { clientId, secret } = await registerClient(app.commands, { clientId: String(form.clientId ?? '').trim(), name: String(form.name ?? ''),
          redirectUris: lines(form.redirectUris), public: form.public === 'on' }, actor(request))
        return clientPage(request, reply, clientId, { notice: 'The relying application was added.', secret: secret ?? undefined })
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return clientsPage(request, reply, { status: r.status, error: r.message, values: form })
      }
    })
    admin.get<{ Params: { id: string }; Querystring: { done?: string } }>('/admin/clients/:id', async (request, reply) =>
      clientPage(request, reply, request.params.id, { notice: request.query.done === 'changed' ? 'The changes were saved.' : undefined }))
    admin.post<{ Params: { id: string; change: string }; Body: Form }>('/admin/clients/:id/:change', async (request, reply) => {
      const { id, change } = request.params
      const form = request.body ?? {}
      const confirmations: Record<string, string> = {
        'rotate-secret': `The application's current secret stops working at once: ${id} cannot sign anyone in until its operator installs the new one, shown once on the next page.`,
        delete: `${id} will no longer be able to sign anyone in, and its secret is destroyed. This cannot be undone; its history stays.`,
      }
      const destructive = Object.hasOwn(confirmations, change)
      if (change !== 'change' && !destructive) return reply.callNotFound()
      if (destructive && form.confirmed !== 'yes') {
        return page(request, reply, 'admin/confirm', { title: `${change === 'delete' ? 'Delete' : 'New secret for'} ${id}?`,
          heading: change === 'delete' ? `Delete relying application ${id}?` : `Give ${id} a new secret?`, consequence: confirmations[change],
          action: request.url, fields: {}, confirm: change === 'delete' ? 'Yes, delete' : 'Yes, a new secret', cancel: `/admin/clients/${encodeURIComponent(id)}` })
      }
      try {
        if (change === 'change') {
          await updateClient(app.commands, { clientId: id, name: String(form.name ?? ''), redirectUris: lines(form.redirectUris) }, actor(request))
          return reply.redirect(`/admin/clients/${encodeURIComponent(id)}?done=changed`, 303)
        }
        if (change === 'delete') {
          await deleteClient(app.commands, id, actor(request))
          return reply.redirect('/admin/clients?done=deleted', 303)
        }
        const secret = await rotateClientSecret(app.commands, id, actor(request))
        reply.header('cache-control', 'no-store')
        return clientPage(request, reply, id, { notice: 'The old secret no longer works.', secret })
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return clientPage(request, reply, id, { status: r.status, error: r.message, values: change === 'change' ? form : {} })
      }
    })

    // Disable (confirmed first) or enable the account; grant or take a role; reset the password or delete the
    // account (each confirmed first, with what it does in words).
    const ACCOUNT_CHANGES = ['disable', 'enable', 'grant', 'revoke', 'reset-password', 'delete'] as const
    type AccountChange = (typeof ACCOUNT_CHANGES)[number]
    admin.post<{ Params: { upn: string; change: string }; Body: Form }>('/admin/users/:upn/account/:change', async (request, reply) => {
      const upn = request.params.upn
      const change = request.params.change as AccountChange
      const form = request.body ?? {}
      if (!ACCOUNT_CHANGES.includes(change)) return reply.callNotFound()
      const user = await findUserByUpn(app.db, upn)
      if (!user) return userPage(request, reply, upn)
      // An admin does not lock themself out: another admin disables, deletes or resets them, or takes their role.
      const self = user.id === signedIn(request)!.id
      if (self && (change === 'disable' || change === 'delete' || change === 'reset-password' || (change === 'revoke' && form.role === 'admin'))) {
        return userPage(request, reply, upn, { status: 409, error: "You can't disable, delete or reset your own account, or take your own admin role. Ask another admin." })
      }
      const confirmations: Partial<Record<AccountChange, () => Promise<{ heading: string; consequence: string; confirm: string }>>> = {
        disable: async () => ({ heading: `Disable the account of ${user.upn}?`, confirm: 'Yes, disable',
          consequence: `${user.upn} will be signed out everywhere and cannot sign in, by any method, until the account is enabled again. Their tokens and history stay.` }),
        'reset-password': async () => ({ heading: `Reset the password of ${user.upn}?`, confirm: 'Yes, reset the password',
          consequence: `${user.upn}'s password stops working now and they are signed out everywhere. You will see a temporary password once, to give them: it works for ${TEMPORARY_PASSWORD_HOURS} hours, only to choose a new password. Their sign-in methods do not change: they still need one to step up.` }),
        delete: async () => {
          const held = (await tokensOfUser(app.db, user.id)).filter((t) => t.status === 'active' || t.status === 'assigned').length
          return { heading: `Delete the account of ${user.upn}?`, confirm: 'Yes, delete the account',
            consequence: `${user.upn} will be signed out everywhere and can never sign in again; the name becomes free for a new account. `
              + `${held === 0 ? 'They have no tokens.' : `Their ${plural(held, 'token')} will be taken from them and held: nobody can add ${held === 1 ? 'it' : 'them'} until you release ${held === 1 ? 'it' : 'each one'}.`} `
              + 'Their history stays in the audit log. This cannot be undone.' }
        },
      }
      const confirmation = confirmations[change]
      if (confirmation && form.confirmed !== 'yes') {
        const c = await confirmation()
        // The account asked about, by id: a name deleted and taken again meanwhile is another person.
        return page(request, reply, 'admin/confirm', { title: c.heading, heading: c.heading, consequence: c.consequence,
          action: request.url, fields: { userId: user.id }, confirm: c.confirm, cancel: `/admin/users/${encodeURIComponent(user.upn)}` })
      }
      try {
        if (change === 'disable' || change === 'enable') await setUserDisabled(app.commands, { upn, disabled: change === 'disable' }, actor(request))
        else if (change === 'grant' || change === 'revoke') await (change === 'grant' ? grantRole : revokeRole)(app.commands, upn, String(form.role ?? '') as Role, actor(request))
        else if (change === 'reset-password') {
          const reset = await resetPassword(app.commands, { upn, userId: typeof form.userId === 'string' ? form.userId : undefined }, actor(request))
          return userPage(request, reply, reset.upn, { password: reset })
        } else {
          const deleted = await deleteUser(app.commands, { upn, userId: typeof form.userId === 'string' ? form.userId : undefined }, actor(request))
          return reply.redirect(`/admin/users?deleted=${encodeURIComponent(deleted.upn)}`, 303)
        }
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return userPage(request, reply, upn, { status: r.status, error: r.message })
      }
      return reply.redirect(`/admin/users/${encodeURIComponent(upn)}?done=${{ disable: 'disabled', enable: 'enabled', grant: 'granted', revoke: 'revoked' }[change]}`, 303)
    })

    // Where the user is reached, and a phone or e-mail method programmed from it (Defender's wizard).
    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/contact', async (request, reply) => {
      const form = request.body ?? {}
      const values = { email: String(form.email ?? ''), mobile: String(form.mobile ?? ''), country: String(form.country ?? '') }
      try {
        await setUserContact(app.commands, { upn: request.params.upn, email: values.email.trim() || null, mobile: values.mobile.trim() || null, country: values.country }, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        const field = (error as { field?: 'email' | 'mobile' }).field
        return userPage(request, reply, request.params.upn, { status: r.status, error: r.message, values, ...(field ? { fieldErrors: { [field]: r.message } } : {}) })
      }
      return reply.redirect(`/admin/users/${encodeURIComponent(request.params.upn)}?done=contact`, 303)
    })

    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/methods', async (request, reply) => {
      const user = await findUserByUpn(app.db, request.params.upn)
      if (!user) return userPage(request, reply, request.params.upn)
      const kind = request.body?.kind
      if (kind !== 'sms' && kind !== 'email') return userPage(request, reply, user.upn, { status: 400, error: 'Choose a phone or an email method.' })
      try {
        await programSentCodeMethod(app.commands, { userId: user.id, kind }, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return userPage(request, reply, user.upn, { status: r.status, error: r.message })
      }
      return reply.redirect(`/admin/users/${encodeURIComponent(user.upn)}?done=${kind === 'sms' ? 'phone' : 'email'}`, 303)
    })

    // A credential another service checks (methods/remote), usable at once.
    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/remote-credential', async (request, reply) => {
      const user = await findUserByUpn(app.db, request.params.upn)
      if (!user) return userPage(request, reply, request.params.upn)
      const form = request.body ?? {}
      const values = { service: String(form.service ?? ''), credential: String(form.credential ?? '') }
      try {
        await assignRemoteCredential(app.commands, { userId: user.id, service: values.service, credential: values.credential, digits: form.digits === '8' ? 8 : 6 }, actor(request))
      } catch (error) {
        const r = error instanceof RemoteServiceError ? { status: 422, message: error.message } : refusal(error)
        if (!r) throw error
        return userPage(request, reply, user.upn, { status: r.status, error: r.message, values })
      }
      return reply.redirect(`/admin/users/${encodeURIComponent(user.upn)}?done=remote`, 303)
    })

    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/groups', async (request, reply) => {
      const remove = typeof request.body?.remove === 'string'
      const group = String((remove ? request.body?.remove : request.body?.group) ?? '')
      try {
        await changeGroup(app.commands, { upn: request.params.upn, group, member: !remove }, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return userPage(request, reply, request.params.upn, { status: r.status, error: r.message, values: { group } })
      }
      return reply.redirect(`/admin/users/${encodeURIComponent(request.params.upn)}?done=${remove ? 'left' : 'joined'}`, 303)
    })

    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/temporary-code', async (request, reply) => {
      const user = await findUserByUpn(app.db, request.params.upn)
      if (!user) return userPage(request, reply, request.params.upn)
      const validDays = Number(request.body?.validDays)
      const oneTime = request.body?.oneTime === 'yes'
      try {
        const issued = await issueTemporaryCode(app.commands, { userId: user.id, validDays, oneTime }, actor(request))
        return userPage(request, reply, user.upn, { issued: { ...issued, oneTime } })
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return userPage(request, reply, user.upn, { status: r.status, error: r.message, values: { validDays: String(request.body?.validDays ?? '') } })
      }
    })

    admin.post<{ Params: { upn: string }; Body: Form }>('/admin/users/:upn/software-token', async (request, reply) => {
      const user = await findUserByUpn(app.db, request.params.upn)
      if (!user) return userPage(request, reply, request.params.upn)
      const delivery = request.body?.delivery === 'email' ? 'email' : request.body?.delivery === 'show' ? 'shown' : null
      if (!delivery) return userPage(request, reply, user.upn, { status: 422, error: 'Choose how to deliver the activation code: by email or shown to you.' })
      const url = `${app.config.publicUrl}/activate`
      try {
        const issued = await requestActivationCode(app.commands, { userId: user.id, by: 'admin', delivery, activateUrl: url }, actor(request))
        return userPage(request, reply, user.upn, { activation: { id: issued.id, code: issued.code && formatActivationCode(issued.code), to: issued.to, expiresAt: issued.expiresAt, url } })
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return userPage(request, reply, user.upn, { status: r.status, error: r.message })
      }
    })

    admin.post<{ Params: { upn: string } }>('/admin/users/:upn/software-token/revoke', async (request, reply) => {
      const user = await findUserByUpn(app.db, request.params.upn)
      if (!user) return userPage(request, reply, request.params.upn)
      const ended = await revokeActivationCodes(app.commands, { userId: user.id }, actor(request))
      return userPage(request, reply, user.upn, { notice: ended > 0 ? 'The activation code was revoked: it no longer works.' : 'There was no live activation code.' })
    })

    // Security policies.
    const policyForm = { methods: SIGN_IN_METHODS, methodLabels: METHOD_LABELS, bounds: SETTING_BOUNDS, labels: SETTING_LABELS }

    async function policiesPage(request: FastifyRequest, reply: FastifyReply, extra: { status?: number; error?: string; notice?: string; values?: Form } = {}) {
      const policies = await listPolicies(app.db)
      const names = await upnsOf(app.db, policies.flatMap((p) => p.targets.filter((x) => x.kind === 'user').map((x) => x.id)))
      return page(request, reply, 'admin/policies', {
        title: 'Security policies', policies, names, ...policyForm, defaults: DEFAULT_SETTINGS, error: extra.error, notice: extra.notice, values: extra.values ?? {},
      }, extra.status ?? 200)
    }

    admin.get<{ Querystring: { done?: string } }>('/admin/policies', async (request, reply) =>
      policiesPage(request, reply, { notice: request.query.done === 'deleted' ? 'The policy was deleted.' : undefined }))

    async function policyPage(request: FastifyRequest, reply: FastifyReply, id: string, extra: { status?: number; error?: string; notice?: string; values?: Form } = {}) {
      const policy = await loadPolicy(app.db, id)
      if (!policy.exists && id !== 'default') return page(request, reply, 'admin/not-found', { title: 'Policy not found', message: `No policy ${id}.` }, 404)
      const names = await upnsOf(app.db, policy.targets.filter((x) => x.kind === 'user').map((x) => x.id))
      return page(request, reply, 'admin/policy', { title: `Policy ${policy.name}`, policy, names, ...policyForm, error: extra.error, notice: extra.notice, values: extra.values ?? {} }, extra.status ?? 200)
    }

    admin.get<{ Params: { id: string }; Querystring: { done?: string } }>('/admin/policies/:id', async (request, reply) =>
      policyPage(request, reply, request.params.id, { notice: ({ saved: 'The policy was saved.', assigned: 'The policy was assigned.', unassigned: 'The assignment was removed.' } as Record<string, string>)[request.query.done ?? ''] }))

    // Create (the id comes with the form) or change a policy.
    admin.post<{ Params: { id?: string }; Body: Form }>('/admin/policies', { config: { formLists: ['methods', 'digits'] } }, async (request, reply) => savePolicy(request, reply, String(request.body?.id ?? '').trim(), true))
    admin.post<{ Params: { id: string }; Body: Form }>('/admin/policies/:id', { config: { formLists: ['methods', 'digits'] } }, async (request, reply) => savePolicy(request, reply, request.params.id, false))

    async function savePolicy(request: FastifyRequest<{ Body: Form }>, reply: FastifyReply, id: string, creating: boolean) {
      const form = request.body ?? {}
      try {
        const priority = String(form.priority ?? '100').trim()
        if (!/^\d+$/.test(priority)) throw new BadInput('Priority: enter a whole number.')
        await setPolicy(app.commands, id, { name: String(form.name ?? ''), priority: Number(priority), settings: settingsFromForm(form), onlyNew: creating }, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        if (creating) return policiesPage(request, reply, { status: r.status, error: r.message, values: form })
        return policyPage(request, reply, id, { status: r.status, error: r.message, values: form })
      }
      return reply.redirect(`/admin/policies/${encodeURIComponent(id)}?done=saved`, 303)
    }

    admin.post<{ Params: { id: string; change: string }; Body: Form }>('/admin/policies/:id/:change', async (request, reply) => {
      const { id, change } = request.params
      const form = request.body ?? {}
      try {
        if (change === 'delete') {
          if (form.confirmed !== 'yes') {
            return page(request, reply, 'admin/confirm', { title: `Delete policy ${id}?`, heading: `Delete security policy ${id}?`,
              consequence: `Its users and groups will fall back to the next policy that applies to them (in the end, the default policy). This cannot be undone; its history stays.`,
              action: request.url, fields: {}, confirm: 'Yes, delete', cancel: `/admin/policies/${encodeURIComponent(id)}` })
          }
          await deletePolicy(app.commands, id, actor(request))
          return reply.redirect('/admin/policies?done=deleted', 303)
        }
        if (change !== 'assign' && change !== 'unassign') throw new NotFound(`There is no change "${change}".`)
        const target = await policyTarget(app, { kind: String(form.kind) === 'group' ? 'group' : 'user', name: String(form.target ?? '') })
        await (change === 'assign' ? assignPolicy : unassignPolicy)(app.commands, id, target, actor(request))
      } catch (error) {
        const r = refusal(error)
        if (!r) throw error
        return policyPage(request, reply, id, { status: r.status, error: r.message, values: { kind: String(form.kind ?? ''), target: String(form.target ?? '') } })
      }
      return reply.redirect(`/admin/policies/${encodeURIComponent(id)}?done=${change}ed`, 303)
    })
  })
}
