// The admin JSON API (machines): bearer API keys with a role.
// - POST /admin/api/tokens/import: a CSV body, streamed; each row imported or reported with its line.
import { Transform } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkApiKey, type ApiRole } from '../../commands/api-keys.js'
import { importTokens } from '../../commands/import-tokens.js'
import { parseInventory } from '../../import/index.js'
import { UnusableFile, type InventoryFormat } from '../../import/types.js'

/** An inventory file larger than this is refused (about a million Entra rows). */
export const MAX_IMPORT_BYTES = 256 * 1024 * 1024

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: { id: string; role: ApiRole }
  }
}

function requireRole(app: FastifyInstance, role: ApiRole) {
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

function limited(max: number) {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      if (seen > max) callback(Object.assign(new Error(`the file is larger than ${max / 1024 / 1024} MiB`), { statusCode: 413 }))
      else callback(null, chunk)
    },
  })
}

export default async function adminApiRoutes(app: FastifyInstance): Promise<void> {
  // The CSV body is handed over as a stream, so a large inventory never sits in memory.
  app.addContentTypeParser(['text/csv', 'text/plain'], (_request, payload, done) => done(null, payload))

  app.post<{ Querystring: { format?: string } }>('/admin/api/tokens/import', {
    preHandler: requireRole(app, 'admin'),
    config: { skipCsrf: true },
  }, async (request, reply) => {
    const format = (request.query.format ?? 'entra') as InventoryFormat
    if (format !== 'entra' && format !== 'oath') {
      return reply.code(400).send({ error: 'Bad Request', message: `format must be entra or oath, not ${request.query.format}` })
    }
    const type = request.headers['content-type'] ?? ''
    if (!/^text\/(csv|plain)/.test(type)) {
      return reply.code(415).send({ error: 'Unsupported Media Type', message: 'Send the inventory as text/csv.' })
    }
    const body = (request.body as NodeJS.ReadableStream).pipe(limited(MAX_IMPORT_BYTES))
    try {
      const report = await importTokens(app.commands, parseInventory(format, body), app.eventMetadata(request, { type: 'admin', id: `api-key:${request.apiKey!.id}` }), { format })
      return { imported: report.imported, rejected: report.rejected }
    } catch (error) {
      if (error instanceof UnusableFile) return reply.code(400).send({ error: 'Bad Request', message: error.message })
      throw error
    }
  })
}
