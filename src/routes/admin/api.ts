// The admin JSON API (machines): bearer API keys with a role.
// - POST /admin/api/tokens/import: a CSV body, streamed; each row imported or reported with its line.
// - GET /admin/api/tokens (search), GET /admin/api/tokens/:serial (detail with its events).
// - POST /admin/api/tokens/:serial/{assign,unassign,disable,enable,unlock,revoke,resync}: each an event
//   with the key as actor; a refused operation is a 4xx with the reason, and writes nothing.
// - POST /admin/api/users/:upn/temporary-code: a code shown once, valid as the user's policy allows.
// - POST /admin/api/users/:upn/software-token: an activation code for a software token, e-mailed or shown once.
// - POST /admin/api/users/:upn/reset-password: a temporary password shown once; DELETE /admin/api/users/:upn.
// - Security policies: GET /admin/api/policies, PUT and DELETE /admin/api/policies/:id,
//   POST /admin/api/policies/:id/{assign,unassign} ({ user } or { group }), GET /admin/api/users/:upn/policy,
//   POST and DELETE /admin/api/users/:upn/groups/:group.
import { Transform } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkApiKey, type ApiRole } from '../../commands/api-keys.js'
import { importTokens } from '../../commands/import-tokens.js'
import { assignPolicy, deletePolicy, setPolicy, unassignPolicy } from '../../commands/policies.js'
import { issueTemporaryCode } from '../../commands/temporary-codes.js'
import { formatActivationCode, requestActivationCode, revokeActivationCodes } from '../../methods/authenticator-app/activation-codes.js'
import { changeGroup, grantRole, revokeRole, setUserDisabled } from '../../commands/users.js'
import { deleteUser, resetPassword } from '../../commands/accounts.js'
import { setUserContact } from '../../commands/contacts.js'
import { programSentCodeMethod } from '../../methods/sent-code/challenge.js'
import { ROLES, type Role } from '../../domain/user/events.js'
import { SETTING_BOUNDS, SIGN_IN_METHODS, type PolicySettings } from '../../domain/policy/events.js'
import { replayStream } from '../../audit/state-as-of.js'
import { TokenError } from '../../domain/token/errors.js'
import { REVOCATION_REASONS } from '../../domain/token/events.js'
import { effectivePolicy, listPolicies } from '../../read-models/policies.js'
import { searchTokens, stateFromRow, type TokensTable } from '../../read-models/tokens.js'
import { findUserByUpn, listUsers } from '../../read-models/users.js'
import { deleteClient, registerClient, rotateClientSecret, updateClient } from '../../commands/clients.js'
import { listClients, loadClient } from '../../read-models/clients.js'
import { parseInventory } from '../../import/index.js'
import { spool, TooLarge } from '../../import/spool.js'
import { INVENTORY_FORMATS, UnusableFile, type InventoryFormat } from '../../import/types.js'
import { page } from '../render.js'
import { NotFound, policyTarget, refusalStatus, TOKEN_OPERATIONS } from './operations.js'

/** An inventory file larger than this is refused (about a million Entra rows). */

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: { id: string; role: ApiRole }
  }
}

export function requireRole(app: FastifyInstance, role: ApiRole) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? ''
    const key = header.startsWith('Bearer ') ? await checkApiKey(app.commands, header.slice(7).trim()) : null
    if (!key) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'A valid API key is required: Authorization: Bearer <key>.' })
    }
    if (key.role !== role) return reply.code(403).send({ error: 'Forbidden', message: `This needs an API key with the ${role} role.` })
    request.apiKey = key
  }
}

export default async function adminApiRoutes(app: FastifyInstance): Promise<void> {
  // The CSV body is handed over as a stream, so a large inventory never sits in memory.
  // Only the import takes such a body; any other route answers 415 rather than meet a stream where it expects JSON.
  app.addContentTypeParser(['text/csv', 'text/plain', 'application/pskc+xml', 'application/xml', 'text/xml'], (request, payload, done) => {
    if (request.routeOptions.url === '/admin/api/tokens/import') return done(null, payload)
    payload.resume()
    done(Object.assign(new Error('Send the request body as JSON (application/json).'), { statusCode: 415, name: 'UnsupportedMediaType' }))
  })

  app.post<{ Querystring: { format?: string } }>('/admin/api/tokens/import', {
    preHandler: requireRole(app, 'admin'),
    config: { skipCsrf: true },
  }, async (request, reply) => {
    const type = request.headers['content-type'] ?? ''
    const xml = /^(application\/(pskc\+)?xml|text\/xml)\b/i.test(type)
    const format = (request.query.format ?? (xml ? 'pskc' : 'entra')) as InventoryFormat
    if (!INVENTORY_FORMATS.includes(format)) {
      return reply.code(400).send({ error: 'Bad Request', message: `format must be entra, oath or pskc, not ${request.query.format}` })
    }
    if (format === 'pskc' ? !xml : !/^text\/(csv|plain)/i.test(type)) {
      return reply.code(415).send({ error: 'Unsupported Media Type', message: format === 'pskc' ? 'Send a PSKC file as application/pskc+xml.' : 'Send the inventory as text/csv.' })
    }
    // A PSKC file's key or password comes in a header, never in the address (which is logged).
    const psk = request.headers['x-pskc-key']
    const password = request.headers['x-pskc-password']
    if (typeof psk === 'string' && !/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(psk)) {
      return reply.code(400).send({ error: 'Bad Request', message: 'X-PSKC-Key must be the pre-shared key in hex: 32, 48 or 64 hex digits.' })
    }
    if (Array.isArray(psk) || Array.isArray(password) || (psk !== undefined && password !== undefined)) {
      return reply.code(400).send({ error: 'Bad Request', message: 'Give one X-PSKC-Key or one X-PSKC-Password, not both.' })
    }
    // A header's bytes arrive as latin1: the password's own UTF-8 is read back from them.
    const secret = { psk: typeof psk === 'string' ? Buffer.from(psk, 'hex') : undefined, password: typeof password === 'string' ? Buffer.from(password, 'latin1').toString('utf8') : undefined }
    // The whole upload first: one over the limit is refused before a row is written.
    const max = app.config.importMaxBytes
    if (Number(request.headers['content-length'] ?? 0) > max) {
      ;(request.body as NodeJS.ReadableStream).resume()
      return reply.code(413).send({ error: 'Payload Too Large', message: new TooLarge(max).message })
    }
    let upload
    try {
      upload = await spool(request.body as NodeJS.ReadableStream, max)
    } catch (error) {
      if (error instanceof TooLarge) return reply.code(413).send({ error: 'Payload Too Large', message: error.message })
      throw error
    }
    try {
      const report = await importTokens(app.commands, parseInventory(format, upload.open(), secret), app.eventMetadata(request, { type: 'admin', id: `api-key:${request.apiKey!.id}` }), { format })
      return { imported: report.imported, rejected: report.rejected, rejectedCount: report.rejectedCount, rejectedByReason: report.rejectedByReason }
    } catch (error) {
      if (error instanceof UnusableFile) return reply.code(400).send({ error: 'Bad Request', message: error.message })
      throw error
    } finally {
      await upload.remove()
    }
  })

  const admin = { preHandler: requireRole(app, 'admin'), config: { skipCsrf: true } }
  const actor = (request: FastifyRequest) => app.eventMetadata(request, { type: 'admin', id: `api-key:${request.apiKey!.id}` })

  app.get<{ Querystring: { serial?: string; user?: string; status?: string; manufacturer?: string; model?: string; after?: string; limit?: string } }>(
    '/admin/api/tokens', admin, async (request) => {
      const { user, limit, ...q } = request.query
      return searchTokens(app.db, { ...q, upn: user || undefined, limit: Math.min(Math.max(Number(limit ?? 100) || 100, 1), 500) })
    })

  app.get<{ Params: { serial: string } }>('/admin/api/tokens/:serial', admin, async (request, reply) => {
    const row = await app.db.selectFrom('tokens').selectAll().where('serial', '=', request.params.serial).executeTakeFirst() as TokensTable | undefined
    if (!row) return reply.code(404).send({ error: 'Not Found', message: `no token with serial ${request.params.serial}` })
    const events = await replayStream(app.db, `token-${request.params.serial}`)
    return { token: stateFromRow(row), events: events.map(({ state: _, ...e }) => e) }
  })

  app.post<{ Params: { upn: string }; Body: { validDays?: number; oneTime?: boolean } }>('/admin/api/users/:upn/temporary-code', {
    ...admin,
    schema: { body: { type: 'object', properties: { validDays: { type: 'integer', minimum: 1, maximum: SETTING_BOUNDS.temporaryCodeMaxDays[1] }, oneTime: { type: 'boolean' } } } },
  }, async (request, reply) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) return reply.code(404).send({ error: 'Not Found', message: `no user ${request.params.upn}` })
    const issued = await issueTemporaryCode(app.commands, { userId: user.id, validDays: request.body?.validDays ?? 1, oneTime: request.body?.oneTime ?? true }, actor(request))
    // Shown this once; only its hash is kept.
    return { code: issued.code, expiresAt: issued.expiresAt.toISOString(), oneTime: request.body?.oneTime ?? true }
  })

  const bodies: Record<string, object> = {
    assign: { type: 'object', required: ['user'], properties: { user: { type: 'string', minLength: 3 } } },
    revoke: { type: 'object', required: ['reason'], properties: { reason: { type: 'string', enum: REVOCATION_REASONS } } },
    resync: { type: 'object', required: ['first', 'second'], properties: { first: { type: 'string', pattern: '^\\d{6,8}$' }, second: { type: 'string', pattern: '^\\d{6,8}$' } } },
  }
  for (const [name, operation] of Object.entries(TOKEN_OPERATIONS)) {
    app.post<{ Params: { serial: string }; Body: Record<string, string> }>(`/admin/api/tokens/:serial/${name}`, {
      ...admin,
      schema: bodies[name] ? { body: bodies[name] } : undefined,
    }, async (request, reply) => {
      try {
        return { token: await operation.run(app, request.params.serial, request.body ?? {}, actor(request)) }
      } catch (error) {
        if (error instanceof TokenError) return reply.code(refusalStatus(error.name)).send({ error: error.name, message: error.message })
        throw error
      }
    })
  }

  // Security policies and the groups they can be assigned to.
  const settingsSchema = {
    type: 'object',
    required: ['methods', 'digits', 'totpWindow', 'lockThreshold', 'lockSeconds', 'activationAttemptsPerMinute', 'maxMethods', 'temporaryCodeMaxDays'],
    additionalProperties: false,
    properties: {
      methods: { type: 'array', items: { type: 'string', enum: SIGN_IN_METHODS } },
      digits: { type: 'array', items: { type: 'integer', enum: [6, 8] } },
      firstMethodWithPassword: { type: 'boolean' },
      userRequestsSoftwareTokens: { type: 'boolean' },
      ...Object.fromEntries(Object.entries(SETTING_BOUNDS).map(([name, [minimum, maximum]]) => [name, { type: 'integer', minimum, maximum }])),
    },
  }
  const targetSchema = {
    type: 'object', additionalProperties: false, minProperties: 1, maxProperties: 1,
    properties: { user: { type: 'string', minLength: 3 }, group: { type: 'string', minLength: 1 } },
  }
  const targetOf = (body: { user?: string; group?: string }) =>
    policyTarget(app, body.group !== undefined ? { kind: 'group', name: body.group } : { kind: 'user', name: String(body.user ?? '') })

  app.get('/admin/api/policies', admin, async () => ({ policies: await listPolicies(app.db) }))

  app.put<{ Params: { id: string }; Body: { name: string; priority?: number; settings: PolicySettings } }>('/admin/api/policies/:id', {
    ...admin,
    schema: { body: { type: 'object', required: ['name', 'settings'], additionalProperties: false,
      properties: { name: { type: 'string' }, priority: { type: 'integer' }, settings: settingsSchema } } },
  }, async (request) => ({
    policy: await setPolicy(app.commands, request.params.id, { name: request.body.name, priority: request.body.priority ?? 100, settings: request.body.settings }, actor(request)),
  }))

  app.delete<{ Params: { id: string } }>('/admin/api/policies/:id', admin, async (request) => {
    await deletePolicy(app.commands, request.params.id, actor(request))
    return { deleted: request.params.id }
  })

  for (const [name, command] of [['assign', assignPolicy], ['unassign', unassignPolicy]] as const) {
    app.post<{ Params: { id: string }; Body: { user?: string; group?: string } }>(`/admin/api/policies/:id/${name}`, {
      ...admin, schema: { body: targetSchema },
    }, async (request) => ({ policy: await command(app.commands, request.params.id, await targetOf(request.body), actor(request)) }))
  }

  app.get<{ Params: { upn: string } }>('/admin/api/users/:upn/policy', admin, async (request) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) throw new NotFound(`no user ${request.params.upn}`)
    return { user: user.upn, groups: user.groups, policy: await effectivePolicy(app.db, user.id) }
  })

  for (const [method, member] of [['post', true], ['delete', false]] as const) {
    app[method]<{ Params: { upn: string; group: string } }>('/admin/api/users/:upn/groups/:group', admin, async (request) => {
      const changed = await changeGroup(app.commands, { upn: request.params.upn, group: request.params.group, member }, actor(request))
      const user = await findUserByUpn(app.db, request.params.upn)
      return { user: user!.upn, groups: user!.groups, changed }
    })
  }

  // Relying applications: listed, registered (the secret returned once), changed, a new secret, deleted.
  const clientView = (c: { clientId: string; name: string; redirectUris: string[]; public: boolean }) =>
    ({ clientId: c.clientId, name: c.name, redirectUris: c.redirectUris, public: c.public })
  const uris = { type: 'array', minItems: 1, maxItems: 20, items: { type: 'string', minLength: 1, maxLength: 2000 } }
  app.get('/admin/api/clients', admin, async () => ({
    clients: (await listClients(app.db)).map((c) => clientView({ clientId: c.client_id, name: c.name, redirectUris: c.redirect_uris, public: c.public })),
  }))
  app.post<{ Body: { clientId: string; name?: string; redirectUris: string[]; public?: boolean } }>('/admin/api/clients', {
    ...admin, schema: { body: { type: 'object', required: ['clientId', 'redirectUris'], additionalProperties: false,
      properties: { clientId: { type: 'string', maxLength: 64 }, name: { type: 'string', maxLength: 100 }, redirectUris: uris, public: { type: 'boolean' } } } },
  }, async (request, reply) => {
    const b = request.body
    const { secret } = await registerClient(app.commands, { clientId: b.clientId, name: b.name ?? '', redirectUris: b.redirectUris, public: b.public ?? false }, actor(request))
    return reply.code(201).send({ client: clientView(await loadClient(app.db, b.clientId)), secret })
  })
  app.put<{ Params: { id: string }; Body: { name: string; redirectUris: string[] } }>('/admin/api/clients/:id', {
    ...admin, schema: { body: { type: 'object', required: ['name', 'redirectUris'], additionalProperties: false,
      properties: { name: { type: 'string', maxLength: 100 }, redirectUris: uris } } },
  }, async (request) => {
    const changed = await updateClient(app.commands, { clientId: request.params.id, ...request.body }, actor(request))
    return { client: clientView(await loadClient(app.db, request.params.id)), changed }
  })
  app.post<{ Params: { id: string } }>('/admin/api/clients/:id/rotate-secret', admin, async (request) =>
    ({ client: request.params.id, secret: await rotateClientSecret(app.commands, request.params.id, actor(request)) }))
  app.delete<{ Params: { id: string } }>('/admin/api/clients/:id', admin, async (request) => {
    await deleteClient(app.commands, request.params.id, actor(request))
    return { deleted: request.params.id }
  })

  // Users: listed by search, switched off and on, roles granted and taken. Each change an event.
  const userView = (u: { upn: string; display_name: string; roles: string[]; groups: string[]; disabled: boolean }) =>
    ({ upn: u.upn, name: u.display_name, roles: u.roles, groups: u.groups, disabled: u.disabled })
  app.get<{ Querystring: { q?: string; after?: string } }>('/admin/api/users', {
    ...admin, schema: { querystring: { type: 'object', properties: { q: { type: 'string', maxLength: 100 }, after: { type: 'string', maxLength: 320 } } } },
  }, async (request) => {
    const { users, next } = await listUsers(app.db, { q: request.query.q, after: request.query.after, limit: 100 })
    return { users: users.map(userView), next }
  })
  for (const [path, disabled] of [['disable', true], ['enable', false]] as const) {
    app.post<{ Params: { upn: string } }>(`/admin/api/users/:upn/${path}`, admin, async (request) => {
      const changed = await setUserDisabled(app.commands, { upn: request.params.upn, disabled }, actor(request))
      return { user: userView((await findUserByUpn(app.db, request.params.upn))!), changed }
    })
  }
  // A temporary password, in this answer only (no-store); it works only to choose a new one.
  app.post<{ Params: { upn: string } }>('/admin/api/users/:upn/reset-password', admin, async (request, reply) => {
    const reset = await resetPassword(app.commands, { upn: request.params.upn }, actor(request))
    reply.header('cache-control', 'no-store')
    return { user: reset.upn, temporaryPassword: reset.password, expiresAt: reset.expiresAt.toISOString() }
  })
  // A software token for the user (Defender's "Request a software token"): an activation code, e-mailed to
  // the user (their address) or, with delivery "show" or without an address, in this answer only (no-store).
  app.post<{ Params: { upn: string }; Body: { delivery?: 'email' | 'show' } }>('/admin/api/users/:upn/software-token', {
    ...admin, schema: { body: { type: 'object', additionalProperties: false, properties: { delivery: { type: 'string', enum: ['email', 'show'] } } } },
  }, async (request, reply) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) throw new NotFound(`no user ${request.params.upn}`)
    const wanted = request.body?.delivery
    const issued = await requestActivationCode(app.commands, { userId: user.id, by: 'admin', delivery: wanted === 'show' ? 'shown' : wanted ?? 'auto',
      activateUrl: `${app.config.publicUrl}/activate` }, actor(request))
    reply.header('cache-control', 'no-store')
    return reply.code(201).send({ user: user.upn, id: issued.id, delivery: issued.delivery === 'shown' ? 'show' : 'email', to: issued.to,
      expiresAt: issued.expiresAt.toISOString(), ...(issued.code ? { activationCode: formatActivationCode(issued.code) } : {}) })
  })
  // Takes back the user's live activation code (and a set-up it opened).
  app.delete<{ Params: { upn: string } }>('/admin/api/users/:upn/software-token', admin, async (request) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) throw new NotFound(`no user ${request.params.upn}`)
    return { user: user.upn, revoked: await revokeActivationCodes(app.commands, { userId: user.id }, actor(request)) }
  })
  // Where the user is reached (a null or empty value removes it), and a phone or e-mail method programmed from it.
  const contactText = { anyOf: [{ type: 'string', maxLength: 254 }, { type: 'null' }] }
  app.put<{ Params: { upn: string }; Body: { email?: string | null; mobile?: string | null; country?: string } }>('/admin/api/users/:upn/contact', {
    ...admin, schema: { body: { type: 'object', additionalProperties: false, properties: { email: contactText, mobile: contactText, country: { type: 'string', pattern: '^[A-Za-z]{2}$' } } } },
  }, async (request) => {
    const contact = await setUserContact(app.commands, { upn: request.params.upn, ...request.body }, actor(request))
    return { user: request.params.upn.toLowerCase(), ...contact }
  })
  app.post<{ Params: { upn: string }; Body: { kind: 'sms' | 'email' } }>('/admin/api/users/:upn/methods', {
    ...admin, schema: { body: { type: 'object', required: ['kind'], additionalProperties: false, properties: { kind: { type: 'string', enum: ['sms', 'email'] } } } },
  }, async (request, reply) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) throw new NotFound(`no user ${request.params.upn}`)
    let method
    try {
      method = await programSentCodeMethod(app.commands, { userId: user.id, kind: request.body.kind }, actor(request))
    } catch (error) {
      if (error instanceof TokenError) return reply.code(error.name === 'NotAllowedByPolicy' ? 422 : 409).send({ error: error.name, message: error.message })
      throw error
    }
    return reply.code(201).send({ user: user.upn, serial: method.serial, kind: method.kind, destination: method.destination, status: method.status })
  })
  // The account goes, with everything that signs in as it; its tokens are held (released one by one).
  app.delete<{ Params: { upn: string } }>('/admin/api/users/:upn', admin, async (request) => {
    const deleted = await deleteUser(app.commands, { upn: request.params.upn }, actor(request))
    return { deleted: deleted.upn, heldTokens: deleted.tokens, retiredTokens: deleted.retired }
  })
  for (const [method, grant] of [['post', true], ['delete', false]] as const) {
    app[method]<{ Params: { upn: string; role: string } }>('/admin/api/users/:upn/roles/:role', admin, async (request) => {
      if (!ROLES.includes(request.params.role as Role)) throw Object.assign(new Error(`the role must be one of ${ROLES.join(', ')}`), { statusCode: 400, name: 'BadInput' })
      if (!(await findUserByUpn(app.db, request.params.upn))) throw new NotFound(`no user ${request.params.upn}`)
      const changed = await (grant ? grantRole : revokeRole)(app.commands, request.params.upn, request.params.role as Role, actor(request))
      return { user: userView((await findUserByUpn(app.db, request.params.upn))!), changed }
    })
  }

  // The API reference as a page, server-rendered from the OpenAPI document (no script: the strict CSP holds).
  // Public like openapi.json: it describes the API and holds nothing secret; every operation needs a key.
  app.get('/admin/api/docs', { schema: { hide: true } as never }, async (request, reply) => {
    const doc = app.swagger() as { info: { title: string; description: string }; paths: Record<string, Record<string, {
      summary?: string; parameters?: { name: string; in: string; required?: boolean }[]
      requestBody?: { content: Record<string, { schema: unknown }> }; responses?: Record<string, unknown>
    }>> }
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(), path, summary: op.summary ?? '', parameters: op.parameters ?? [],
      body: op.requestBody ? JSON.stringify(Object.values(op.requestBody.content)[0]?.schema, null, 2) : null,
    })))
    return page(request, reply, 'admin/api-docs', { title: 'API reference', info: doc.info, operations })
  })
}
