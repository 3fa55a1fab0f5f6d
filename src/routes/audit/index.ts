// Auditors: timelines, state as of an instant, export, hash-chain verification.
// - Machines: a bearer API key with the auditor role (JSON API under /audit/api).
// - People: a user with the auditor role who signed in and entered a code from a token (mfa).
// Nothing here changes anything, and nothing secret is shown: events carry none.
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ExportDestinationClosed, exportEventsTo, type ExportFormat } from '../../audit/export.js'
import { INSTANT_EXAMPLE, parseInstant } from '../../audit/instant.js'
import { tokenStateAsOf } from '../../audit/state-as-of.js'
import { timeline, timelineNewestFirst, timelineTotal, type TimelineFilter } from '../../audit/timeline.js'
import { checkApiKey } from '../../commands/api-keys.js'
import { verifyChains } from '../../event-store/verify.js'
import { findUserForAudit, resolveStream, upnsOf } from '../../read-models/users.js'
import { requireStaff, signedIn } from '../guards.js'
import { errorPage, page } from '../render.js'

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
  before?: string
  limit?: string
}

class BadQuery extends Error {
  statusCode = 400
  override name = 'BadQuery'
}

function date(name: string, value: string | undefined): Date | undefined {
  if (!value) return undefined
  const d = parseInstant(value)
  if (!d) throw new BadQuery(`${name} must be ${INSTANT_EXAMPLE}`)
  return d
}

/**
 * The response as a destination for an export: the reply stays fastify's until the first output, so an
 * export that fails before it gets the usual error answer; from then on the output goes to the raw
 * response, each write called back when the response is done with it (the export reuses the memory). A
 * client that goes away destroys it, which stops the export. From the first output on, fastify's onSend
 * hooks do not run (a download sets no cookie); its headers, the security headers among them, are sent.
 */
function download(reply: FastifyReply, headers: Record<string, string>): Writable {
  const res = reply.raw
  let started = false
  const start = () => {
    if (started) return
    started = true
    reply.hijack()
    // onSend does not run for a hijacked reply: the export is no more cacheable than any other answer.
    for (const [name, value] of Object.entries({ ...reply.getHeaders(), 'cache-control': 'no-store', ...headers })) if (value !== undefined) res.setHeader(name, value)
    res.writeHead(200)
  }
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      start()
      res.write(chunk, callback)
    },
    final(callback) {
      start()
      res.end(callback)
    },
  })
  // A client gone, even before this (while the handler awaited), is a destination closed.
  if (res.destroyed) process.nextTick(() => out.destroy())
  else {
    res.on('close', () => {
      if (!res.writableFinished) out.destroy()
    })
  }
  return out
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
      const user = await findUserForAudit(app.db, q.user)
      userId = user?.id ?? `unknown:${q.user}`
    }
    // An actor by user principal name, or by its id as events record it (cli:root, api-key:...).
    let actorId = q.actor || undefined
    if (actorId?.includes('@')) actorId = (await findUserForAudit(app.db, actorId))?.id ?? `unknown:${actorId}`
    return {
      streamId: q.serial ? `token-${q.serial}` : q.stream ? await resolveStream(app.db, q.stream) : undefined,
      userId,
      relyingApplication: q.app || undefined,
      types: q.type ? q.type.split(',').map((t) => t.trim()).filter(Boolean) : undefined,
      actorId,
      from: date('from', q.from),
      to: date('to', q.to),
    }
  }

  const pageOf = (q: Query) => {
    const after = q.after ? Number(q.after) : undefined
    const before = q.before ? Number(q.before) : undefined
    const limit = q.limit ? Number(q.limit) : undefined
    if ([after, before, limit].some((n) => n !== undefined && !(Number.isSafeInteger(n) && n >= 0))) throw new BadQuery('after, before and limit must be whole numbers')
    return { after, before, limit }
  }

  /** The filters a page shows, in words. */
  const filtersShown = (q: Query) => [
    q.serial && `token ${q.serial}`, q.stream && `stream ${q.stream}`, q.user && `user ${q.user}`, q.actor && `actor ${q.actor}`,
    q.app && `relying application ${q.app}`, q.type && `types ${q.type}`, q.from && `from ${q.from}`, q.to && `until ${q.to}`,
  ].filter((x): x is string => !!x)

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
      const filter = { from: date('from', request.query.from), to: date('to', request.query.to),
        streamId: request.query.stream || undefined, types: request.query.type ? request.query.type.split(',') : undefined }
      const out = download(reply, {
        'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
        'content-disposition': `attachment; filename="tessera-events.${format}"`,
      })
      try {
        await exportEventsTo(app.db, filter, format, out)
      } catch (error) {
        if (error instanceof ExportDestinationClosed) return request.log.info({ err: { message: error.message } }, 'export: download given up')
        // Nothing sent yet: fastify's error answer. Part sent: the download breaks off, as the client will see.
        if (!reply.sent) throw error
        request.log.error({ err: error }, 'export failed part way')
        reply.raw.destroy()
      }
    })

    audit.get('/audit/api/verify', async () => verifyChains(app.db))

    audit.get<{ Querystring: Query }>('/audit', async (request, reply) => {
      const q = request.query
      let filter: TimelineFilter
      let paging: ReturnType<typeof pageOf>
      try {
        filter = await filterOf(q)
        paging = pageOf(q)
      } catch (error) {
        // The form again, as it was filled in, with what is wrong.
        if (!(error instanceof BadQuery)) throw error
        return page(request, reply, 'audit/index', { title: 'Audit', values: { ...q }, error: error.message, entries: [], olderQuery: null, newerQuery: null,
          exportQuery: '', exportIgnores: [], total: 0, filters: [] }, 400)
      }
      // Newest first, a page at a time in either direction, with the total the filters match.
      const [result, total] = await Promise.all([timelineNewestFirst(app.db, filter, paging), timelineTotal(app.db, filter)])
      const kept = Object.fromEntries(Object.entries(q).filter(([k, v]) => v && k !== 'after' && k !== 'before'))
      const olderQuery = result.older !== null ? new URLSearchParams({ ...kept, before: String(result.older) }).toString() : null
      const newerQuery = result.newer !== null ? new URLSearchParams({ ...kept, after: String(result.newer) }).toString() : null
      // The export of what the page shows, as far as the export's filters go.
      const stream = q.serial ? `token-${q.serial}` : q.stream
      const exportQuery = new URLSearchParams(Object.entries({ stream, type: q.type, from: q.from, to: q.to }).filter((e): e is [string, string] => !!e[1])).toString()
      const exportIgnores = [q.user && 'user', q.app && 'relying application', q.actor && 'actor'].filter((x): x is string => !!x)
      return page(request, reply, 'audit/index', { title: 'Audit', values: { ...q }, entries: result.entries, olderQuery, newerQuery, exportQuery, exportIgnores,
        total, filters: filtersShown(q) })
    })

    audit.get<{ Params: { serial: string }; Querystring: { at?: string } }>('/audit/tokens/:serial', async (request, reply) => {
      const { serial } = request.params
      let at: Date | undefined
      let error: string | undefined
      try {
        at = date('at', request.query.at)
      } catch (e) {
        // The state now, with what is wrong with the instant asked for.
        if (!(e instanceof BadQuery)) throw e
        error = e.message
      }
      const streamId = `token-${serial}`
      if (!(await app.db.selectFrom('events').select('position').where('stream_id', '=', streamId).limit(1).executeTakeFirst())) {
        return errorPage(reply, 404, 'No such token', `No token with serial ${serial} has any event.`)
      }
      // Its events up to the instant (the whole millisecond, as the state), or all of them.
      const result = await timeline(app.db, { streamId, to: at ? new Date(at.getTime() + 1) : undefined }, { limit: 500 })
      const state = await tokenStateAsOf(app.db, serial, { until: at })
      const owner = state?.userId ? (await upnsOf(app.db, [state.userId])).get(state.userId) ?? state.userId : null
      return page(request, reply, 'audit/token', { title: `Token ${serial}`, serial, entries: result.entries, more: result.next !== null,
        state, owner, at: at ? request.query.at : '', values: { at: request.query.at ?? '' }, error }, error ? 400 : 200)
    })

    audit.get('/audit/verify', async (request, reply) => {
      const report = await verifyChains(app.db)
      return page(request, reply, 'audit/verify', { title: 'Verify the event log', report })
    })
  })
}
