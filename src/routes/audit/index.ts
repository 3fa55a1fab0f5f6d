// Auditors: timelines, state as of an instant, export, hash-chain verification.
// - Machines: a bearer API key with the auditor role (JSON API under /audit/api).
// - People: a user with the auditor role who signed in and entered a code from a token (mfa).
// Nothing here changes anything, and nothing secret is shown: events carry none.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { exportEvents, type ExportFormat } from '../../audit/export.js'
import { tokenStateAsOf } from '../../audit/state-as-of.js'
import { timeline, type TimelineFilter } from '../../audit/timeline.js'
import { checkApiKey } from '../../commands/api-keys.js'
import { verifyChains } from '../../event-store/verify.js'
import { findUserByUpn } from '../../read-models/users.js'
import { requireStaff, signedIn } from '../guards.js'
import { page } from '../render.js'

interface Query {
  serial?: string
  stream?: string
  user?: string
  app?: string
  type?: string
  actor?: string
  from?: string
  to?: string
  after?: string
  limit?: string
}

class BadQuery extends Error {
  statusCode = 400
  override name = 'BadQuery'
}

function date(name: string, value: string | undefined): Date | undefined {
  if (!value) return undefined
  const d = new Date(value)
  if (Number.isNaN(d.getTime())) throw new BadQuery(`${name} must be a date and time like 2026-11-22T10:00:00Z`)
  return d
}

export default async function auditRoutes(app: FastifyInstance): Promise<void> {
  /** Who may audit: an auditor API key, or an auditor user verified with a code. */
  const staff = requireStaff(app.db, 'auditor', () => app.commands.now().getTime())
  async function requireAuditor(request: FastifyRequest, reply: FastifyReply) {
    const header = request.headers.authorization
    if (header?.startsWith('Bearer ')) {
      const key = await checkApiKey(app.commands, header.slice(7).trim())
      if (key?.role === 'auditor') return
      return reply.code(key ? 403 : 401).send({ error: key ? 'Forbidden' : 'Unauthorized', message: 'This needs an API key with the auditor role.' })
    }
    if (!signedIn(request) && request.url.startsWith('/audit/api')) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'Sign in or send an auditor API key.' })
    }
    return staff(request, reply)
  }

  async function filterOf(q: Query): Promise<TimelineFilter> {
    let userId: string | undefined
    if (q.user) {
      const user = await findUserByUpn(app.db, q.user)
      userId = user?.id ?? `unknown:${q.user}`
    }
    return {
      streamId: q.serial ? `token-${q.serial}` : q.stream || undefined,
      userId,
      relyingApplication: q.app || undefined,
      types: q.type ? q.type.split(',').map((t) => t.trim()).filter(Boolean) : undefined,
      actorId: q.actor || undefined,
      from: date('from', q.from),
      to: date('to', q.to),
    }
  }

  const pageOf = (q: Query) => {
    const after = q.after ? Number(q.after) : undefined
    const limit = q.limit ? Number(q.limit) : undefined
    if ((after !== undefined && !Number.isInteger(after)) || (limit !== undefined && !Number.isInteger(limit))) throw new BadQuery('after and limit must be whole numbers')
    return { after, limit }
  }

  app.register(async (audit) => {
    audit.addHook('preHandler', requireAuditor)

    audit.get<{ Querystring: Query }>('/audit/api/events', async (request) => {
      const result = await timeline(app.db, await filterOf(request.query), pageOf(request.query))
      return { events: result.entries, next: result.next }
    })

    audit.get<{ Params: { serial: string }; Querystring: { at?: string; position?: string } }>('/audit/api/tokens/:serial/state', async (request, reply) => {
      const at = date('at', request.query.at)
      const position = request.query.position ? Number(request.query.position) : undefined
      const state = await tokenStateAsOf(app.db, request.params.serial, { until: at, position })
      if (!state) return reply.code(404).send({ error: 'Not Found', message: `token ${request.params.serial} had no events by then` })
      return { serial: request.params.serial, asOf: at ?? null, position: position ?? null, state }
    })

    audit.get<{ Querystring: { format?: string; from?: string; to?: string; stream?: string; type?: string } }>('/audit/api/export', async (request, reply) => {
      const format = (request.query.format ?? 'jsonl') as ExportFormat
      if (format !== 'jsonl' && format !== 'csv') throw new BadQuery('format must be jsonl or csv')
      const stream = exportEvents(app.db, { from: date('from', request.query.from), to: date('to', request.query.to),
        streamId: request.query.stream || undefined, types: request.query.type ? request.query.type.split(',') : undefined }, format)
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
        .header('content-disposition', `attachment; filename="tessera-events.${format}"`)
        .send(stream)
    })

    audit.get('/audit/api/verify', async () => verifyChains(app.db))

    audit.get<{ Querystring: Query }>('/audit', async (request, reply) => {
      const q = request.query
      const result = await timeline(app.db, await filterOf(q), pageOf(q))
      const nextQuery = result.next ? new URLSearchParams({ ...Object.fromEntries(Object.entries(q).filter(([, v]) => v)), after: String(result.next) }).toString() : null
      return page(request, reply, 'audit/index', { title: 'Audit', values: { ...q }, entries: result.entries, nextQuery })
    })

    audit.get<{ Params: { serial: string }; Querystring: { at?: string } }>('/audit/tokens/:serial', async (request, reply) => {
      const at = request.query.at ? date('at', request.query.at) : undefined
      const result = await timeline(app.db, { streamId: `token-${request.params.serial}` }, { limit: 500 })
      const state = await tokenStateAsOf(app.db, request.params.serial, { until: at })
      return page(request, reply, 'audit/token', { title: `Token ${request.params.serial}`, serial: request.params.serial,
        entries: result.entries, state, at: request.query.at ?? '' })
    })

    audit.get('/audit/verify', async (request, reply) => {
      const report = await verifyChains(app.db)
      return page(request, reply, 'audit/verify', { title: 'Verify the event log', report })
    })
  })
}
