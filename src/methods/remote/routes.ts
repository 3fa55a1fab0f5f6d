// Remote services for admins, as a JSON API (bearer API keys with the admin role) and as pages (staff
// sessions with the admin role and a recent code):
// - GET /admin/api/remote-services; PUT /admin/api/remote-services/:id (the whole configuration; a secret left
//   out is kept: pkcs12 as base64 with its passphrase, caPem (null clears it); or secret); DELETE /admin/api/remote-services/:id;
//   POST /admin/api/remote-services/:id/test ({ ok, message }: what went wrong, in words);
//   POST /admin/api/users/:upn/remote-credential { service, credential, digits? }.
// - /admin/remote-services: the list with Test connection and Remove, and forms to add a VIP service (its
//   PKCS#12 file uploaded) or a RADIUS service. A secret is never shown back.
// A refused change is a 4xx with the reason and writes nothing.
import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { TokenError } from '../../domain/token/errors.js'
import { findUserByUpn } from '../../read-models/users.js'
import { requireRole } from '../../routes/admin/api.js'
import { NotFound, refusalStatus } from '../../routes/admin/operations.js'
import { requireStaff, signedIn } from '../../routes/guards.js'
import { multipartCsrfAccepted } from '../../routes/form-shape.js'
import { page } from '../../routes/render.js'
import { assignRemoteCredential } from './credentials.js'
import { RemoteServiceError, RemoteServiceInUse, UnknownRemoteService } from './service.js'
import {
  configureRemoteService, DEFAULT_CODE_LIFETIME_SECONDS, DEFAULT_TIMEOUT_SECONDS, listRemoteServices, removeRemoteService, testRemoteService,
  type RemoteServiceInput,
} from './services.js'

const statusOf = (error: RemoteServiceError) => (error instanceof UnknownRemoteService ? 404 : error instanceof RemoteServiceInUse ? 409 : 400)

/** A PKCS#12 file is a few kilobytes; anything near this is not one. */
const MAX_UPLOAD = 64 * 1024

function view(s: Awaited<ReturnType<typeof listRemoteServices>>[number]) {
  return { id: s.id, name: s.name, settings: s.settings, codeLifetimeSeconds: s.codeLifetimeSeconds, secretFingerprint: s.secretFingerprint, credentials: s.credentials }
}

export default async function remoteServiceRoutes(app: FastifyInstance): Promise<void> {
  // The JSON API.
  const admin = { preHandler: requireRole(app, 'admin'), config: { skipCsrf: true } }
  const apiActor = (request: FastifyRequest) => app.eventMetadata(request, { type: 'admin', id: `api-key:${request.apiKey!.id}` })
  const refused = (reply: FastifyReply, error: unknown) => {
    if (error instanceof RemoteServiceError) return reply.code(statusOf(error)).send({ error: error.name, message: error.message })
    if (error instanceof TokenError) return reply.code(error.name === 'NotAllowedByPolicy' ? 422 : refusalStatus(error.name)).send({ error: error.name, message: error.message })
    throw error
  }
  const text = { type: 'string', maxLength: 1024 }
  const number = { type: 'integer', minimum: 0, maximum: 86_400 }

  app.get('/admin/api/remote-services', admin, async () => ({ services: (await listRemoteServices(app.db)).map(view) }))

  app.put<{ Params: { id: string }; Body: Record<string, unknown> }>('/admin/api/remote-services/:id', {
    ...admin,
    schema: { body: { type: 'object', required: ['name', 'protocol'], additionalProperties: false, properties: {
      name: text, protocol: { type: 'string', enum: ['vip', 'radius'] }, codeLifetimeSeconds: number, timeoutSeconds: number,
      url: text, pkcs12: { type: 'string', maxLength: 100_000 }, passphrase: text, caPem: { anyOf: [{ type: 'string', maxLength: 100_000 }, { type: 'null' }] },
      servers: { type: 'array', maxItems: 5, items: { type: 'string', maxLength: 300 } }, secret: text, retries: number, nasIdentifier: text,
    } } },
  }, async (request, reply) => {
    const b = request.body
    let pkcs12: Buffer | undefined
    if (typeof b.pkcs12 === 'string') {
      if (!/^[A-Za-z0-9+/=\s]+$/.test(b.pkcs12)) return reply.code(400).send({ error: 'InvalidRemoteService', message: 'pkcs12 must be the PKCS#12 file in base64.' })
      pkcs12 = Buffer.from(b.pkcs12, 'base64')
    }
    try {
      const service = await configureRemoteService(app.commands, { ...b, id: request.params.id, pkcs12 } as RemoteServiceInput, apiActor(request))
      return { id: service.id, name: service.name, settings: service.settings, codeLifetimeSeconds: service.codeLifetimeSeconds, secretFingerprint: service.secretFingerprint, version: service.version }
    } catch (error) {
      return refused(reply, error)
    }
  })

  app.delete<{ Params: { id: string } }>('/admin/api/remote-services/:id', admin, async (request, reply) => {
    try {
      await removeRemoteService(app.commands, { id: request.params.id }, apiActor(request))
      return { removed: request.params.id }
    } catch (error) {
      return refused(reply, error)
    }
  })

  app.post<{ Params: { id: string } }>('/admin/api/remote-services/:id/test', admin, async (request, reply) => {
    try {
      return await testRemoteService(app.commands, request.params.id)
    } catch (error) {
      return refused(reply, error)
    }
  })

  app.post<{ Params: { upn: string }; Body: { service: string; credential: string; digits?: 6 | 8 } }>('/admin/api/users/:upn/remote-credential', {
    ...admin,
    schema: { body: { type: 'object', required: ['service', 'credential'], additionalProperties: false, properties: {
      service: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,39}$' }, credential: { type: 'string', maxLength: 64 }, digits: { type: 'integer', enum: [6, 8] },
    } } },
  }, async (request, reply) => {
    const user = await findUserByUpn(app.db, request.params.upn)
    if (!user) throw new NotFound(`no user ${request.params.upn}`)
    try {
      const token = await assignRemoteCredential(app.commands, { userId: user.id, ...request.body }, apiActor(request))
      return reply.code(201).send({ user: user.upn, serial: token.serial, service: token.remoteService, credential: token.remoteCredential, status: token.status })
    } catch (error) {
      return refused(reply, error)
    }
  })

  // The pages.
  await app.register(async (pages) => {
    const now = () => app.commands.now().getTime()
    pages.addHook('preHandler', requireStaff(app.db, 'admin', now))
    await pages.register(multipart, { limits: { files: 1, fields: 20, fileSize: MAX_UPLOAD, fieldSize: MAX_UPLOAD } })
    const actor = (request: FastifyRequest) => app.eventMetadata(request, { type: 'admin', id: signedIn(request)!.upn })

    async function listPage(request: FastifyRequest, reply: FastifyReply, extra: { status?: number; error?: string; notice?: string; tested?: { id: string; ok: boolean; message: string }; values?: Record<string, string> } = {}) {
      const services = await listRemoteServices(app.db)
      return page(request, reply, 'admin/remote-services', {
        title: 'Remote services', services, error: extra.error, notice: extra.notice, tested: extra.tested, values: extra.values ?? {},
        defaults: { timeoutSeconds: DEFAULT_TIMEOUT_SECONDS, codeLifetimeSeconds: DEFAULT_CODE_LIFETIME_SECONDS },
      }, extra.status ?? 200)
    }

    pages.get<{ Querystring: { done?: string } }>('/admin/remote-services', async (request, reply) =>
      listPage(request, reply, { notice: ({ saved: 'The remote service was saved.', removed: 'The remote service was removed.' } as Record<string, string>)[request.query.done ?? ''] }))

    // Add or change a service: a multipart form (a VIP service's PKCS#12 file). The CSRF token is checked
    // once the fields are read, before anything is done with them.
    pages.post('/admin/remote-services', { config: { skipCsrf: true } }, async (request, reply) => {
      if (!request.isMultipart()) return listPage(request, reply, { status: 400, error: 'Send the form as it is on the page.' })
      const fields: Record<string, string> = {}
      let pkcs12: Buffer | undefined
      try {
        for await (const part of request.parts()) {
          if (part.type === 'field') fields[part.fieldname] = String(part.value)
          else {
            const file = await part.toBuffer()
            if (file.length > 0) pkcs12 = file
          }
        }
      } catch (error) {
        if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE' || (error as { code?: string }).code === 'FST_PARTS_LIMIT') {
          return listPage(request, reply, { status: 413, error: 'The PKCS#12 file is over 64 KB: it is not a client certificate.' })
        }
        throw error
      }
      if (!(await multipartCsrfAccepted(app, request, reply, fields._csrf))) return reply
      const { _csrf, passphrase, secret, ...values } = fields
      const common = { id: (fields.id ?? '').trim(), name: fields.name ?? '', codeLifetimeSeconds: fields.codeLifetimeSeconds as never, timeoutSeconds: fields.timeoutSeconds as never }
      const input: RemoteServiceInput = fields.protocol === 'radius'
        ? { ...common, protocol: 'radius', servers: (fields.servers ?? '').split(/[\s,]+/).filter(Boolean), secret: secret || undefined, retries: fields.retries as never }
        : { ...common, protocol: 'vip', url: (fields.url ?? '').trim(), pkcs12, passphrase: pkcs12 ? passphrase ?? '' : passphrase || undefined, caPem: fields.caPem?.trim() || (fields.systemCa === 'on' ? null : undefined) }
      try {
        await configureRemoteService(app.commands, input, actor(request))
      } catch (error) {
        if (error instanceof RemoteServiceError) return listPage(request, reply, { status: statusOf(error), error: error.message, values })
        throw error
      }
      return reply.redirect('/admin/remote-services?done=saved', 303)
    })

    pages.post<{ Params: { id: string } }>('/admin/remote-services/:id/test', async (request, reply) => {
      try {
        const result = await testRemoteService(app.commands, request.params.id)
        return listPage(request, reply, { tested: { id: request.params.id, ...result } })
      } catch (error) {
        if (error instanceof RemoteServiceError) return listPage(request, reply, { status: statusOf(error), error: error.message })
        throw error
      }
    })

    pages.post<{ Params: { id: string }; Body: Record<string, string> }>('/admin/remote-services/:id/remove', async (request, reply) => {
      if (request.body?.confirmed !== 'yes') {
        const heading = `Remove remote service ${request.params.id}?`
        return page(request, reply, 'admin/confirm', { title: heading, heading,
          consequence: `Remote service ${request.params.id} will be removed and its secrets (client certificate, shared secret) destroyed. A service that credentials still use is not removed.`,
          action: `/admin/remote-services/${encodeURIComponent(request.params.id)}/remove`, fields: {}, confirm: 'Remove', cancel: '/admin/remote-services' })
      }
      try {
        await removeRemoteService(app.commands, { id: request.params.id }, actor(request))
      } catch (error) {
        if (error instanceof RemoteServiceError) return listPage(request, reply, { status: statusOf(error), error: error.message })
        throw error
      }
      return reply.redirect('/admin/remote-services?done=removed', 303)
    })
  })
}
