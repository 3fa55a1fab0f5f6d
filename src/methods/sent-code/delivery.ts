// The delivery worker: takes jobs from `deliveries` and hands each message to a provider, in failover order.
// - Any number of processes run it. A job is taken with FOR UPDATE SKIP LOCKED and a lease (a row, not a
//   position in the log): jobs are independent, one slow SMS must not hold up the others, and each job
//   carries its own tries, provider and next attempt, which a catch-up subscription's single checkpoint
//   cannot. A process killed mid-send leaves the lease to run out; the job is then tried again.
// - A provider that fails is tried once more after a short wait, then the next one; a refusal moves on at
//   once. Nothing is tried after the code expired. A round's tries are recorded together: each job's row
//   and each try as an event on its method's stream, in one transaction; the message (it holds the code) is
//   erased once a provider took it or the job ended.
import { deliveries } from '../../metrics.js'
import { randomUUID, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { sql } from 'kysely'
import { appendStreamsWithProjections } from '../../commands/append.js'
import { retryOnConflict, type CommandContext } from '../../commands/context.js'
import { tokenStream, type TokenEvent } from '../../domain/token/events.js'
import type { EventMetadata } from '../../event-store/types.js'
import { ProviderRefused, type Provider } from './providers/provider.js'
import { deliveryAad, noticeAad } from './challenge.js'

/** Tries on one provider before the next one. */
const TRIES_PER_PROVIDER = 2
const RETRY_MS = 250
const LEASE_MS = 30_000
const BATCH = 32

interface Job {
  id: string
  serial: string
  challenge: string | null
  channel: 'sms' | 'email'
  key_id: string
  nonce: Buffer
  message: Buffer | null
  attempts: number
  provider_index: number
  expires_at: Date
  /** This process's lease: what it records holds only while the row still carries it. */
  lease_until: Date
}

export type DeliveryOutcome = 'sent' | 'delivered' | 'failed' | 'expired' | 'pending'

/** What a try of a job came to: ended (sent, failed, expired), or pending again (next: when and with which provider). */
interface Outcome {
  job: Job
  status: 'sent' | 'failed' | 'expired' | 'pending'
  events: TokenEvent[]
  provider?: string
  messageId?: string | null
  next?: { providerIndex: number; attempts: number; at: Date }
}

const workerMeta = (): EventMetadata => ({ correlationId: randomUUID(), causationId: null, actor: { type: 'system', id: 'delivery' },
  requestId: null, sourceIp: null, userAgent: null, relyingApplication: null })

export class DeliveryWorker {
  private readonly settled = new EventEmitter()
  private timer: NodeJS.Timeout | null = null
  private pruneTimer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private again = false
  private stopped = false

  constructor(
    private readonly ctx: CommandContext,
    private readonly providers: readonly Provider[],
    private readonly options: { timeoutMs: number; pollMs?: number; log?: (message: string, detail?: object) => void },
  ) {
    this.settled.setMaxListeners(0)
    for (const provider of providers) {
      provider.onReceipt?.((messageId, delivered) => this.receipt(provider.name, messageId, delivered)
        .catch((error) => this.options.log?.('delivery receipt not recorded', { err: error, provider: provider.name })))
    }
  }

  /**
   * Forgets what no budget counts any more: ended jobs after a day (budgets look back an hour), the
   * gateway-wide counts after an hour. Any process may do it; doing it twice harms nothing.
   */
  async prune(): Promise<void> {
    const now = this.ctx.now()
    await sql`delete from deliveries where status not in ('pending', 'sending') and created_at < ${new Date(now.getTime() - 86_400_000)}`.execute(this.ctx.db)
    await sql`delete from send_budget where minute < ${new Date(now.getTime() - 3_600_000)}`.execute(this.ctx.db)
  }

  /** Polls for due jobs (other processes' too) and runs a round at once when woken; prunes every 10 minutes. */
  start(): void {
    this.pruneTimer = setInterval(() => void this.prune().catch((error) => this.options.log?.('delivery prune failed', { err: error })), 10 * 60_000)
    this.pruneTimer.unref()
    const tick = () => {
      if (this.stopped) return
      this.wake()
      this.timer = setTimeout(tick, this.options.pollMs ?? 200)
      this.timer.unref()
    }
    tick()
  }

  /** Runs a round now (a job was just queued); rounds never overlap in one process. */
  wake(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = (async () => {
      do {
        this.again = false
        try {
          while ((await this.round()) === BATCH && !this.stopped) { /* more are due */ }
        } catch (error) {
          this.options.log?.('delivery round failed', { err: error })
        }
      } while (this.again && !this.stopped)
    })().finally(() => { this.running = null })
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    if (this.pruneTimer) clearInterval(this.pruneTimer)
    await this.running
    await Promise.all(this.providers.map((p) => p.close().catch(() => {})))
  }

  /**
   * Takes the due jobs (leased to this process), tries each with its provider, all at once, then records what
   * became of all of them in one transaction; returns how many it took.
   */
  async round(): Promise<number> {
    const now = this.ctx.now()
    const jobs = (await sql<Job>`
      update deliveries d set status = 'sending', lease_until = ${new Date(now.getTime() + LEASE_MS)}, attempts = d.attempts + 1
      where d.id in (select id from deliveries where status in ('pending', 'sending') and next_attempt_at <= ${now}
                       and (lease_until is null or lease_until < ${now}) order by id limit ${BATCH} for update skip locked)
      returning d.id, d.serial, d.challenge, d.channel, d.key_id, d.nonce, d.message, d.attempts, d.provider_index, d.expires_at, d.lease_until`.execute(this.ctx.db)).rows
    if (jobs.length === 0) return 0
    const outcomes = await Promise.all(jobs.map((job) => this.attempt(job)))
    await this.record(outcomes)
    for (const o of outcomes) if (o.status !== 'pending') this.settled.emit(o.job.id, o.status)
    // A retry due before the next poll: a round then.
    const soonest = Math.min(...outcomes.filter((o) => o.status === 'pending').map((o) => o.next!.at.getTime()))
    if (Number.isFinite(soonest)) setTimeout(() => this.wake(), Math.max(0, soonest - this.ctx.now().getTime())).unref()
    return jobs.length
  }

  /** One try of a job with its provider: what to record (nothing is written here). */
  private async attempt(job: Job): Promise<Outcome> {
    // A notice (a method added or removed) has no challenge, and no event follows it.
    const notice = job.challenge === null
    const challenge = Number(job.challenge)
    const undelivered = (reason: 'expired' | 'no-provider'): TokenEvent[] => notice ? [] : [{ type: 'ChallengeUndelivered', data: { serial: job.serial, challenge, reason } }]
    if (job.expires_at <= this.ctx.now() || !job.message) return { job, status: 'expired', events: undelivered('expired') }
    const provider = this.providers.filter((p) => p.channel === job.channel)[job.provider_index]
    if (!provider) return { job, status: 'failed', events: undelivered('no-provider') }
    const plain = this.ctx.vault.open(notice ? noticeAad(job.id) : deliveryAad(job.serial, job.challenge!), { keyId: job.key_id, nonce: job.nonce, ciphertext: job.message })
    let message: { to: string; subject: string; text: string }
    try {
      message = JSON.parse(plain.toString('utf8'))
    } finally {
      plain.fill(0)
    }
    try {
      const { messageId } = await provider.send({ ...message, reference: this.reference(job.id) }, AbortSignal.timeout(this.options.timeoutMs))
      deliveries.inc({ provider: provider.name, result: 'accepted' })
      return { job, status: 'sent', provider: provider.name, messageId,
        events: notice ? [] : [{ type: 'DeliveryAttempted', data: { serial: job.serial, challenge, provider: provider.name, result: 'accepted', messageId, error: null } }] }
    } catch (error) {
      const refused = error instanceof ProviderRefused
      const timeout = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError'
      // A provider's own words can hold the address, the number or its URL's password: events and logs get
      // only what kind of failure it was.
      const reason = refused ? 'refused' : timeout ? 'no answer in time' : `connection or protocol error${(error as { code?: unknown }).code ? ` (${String((error as { code?: unknown }).code).slice(0, 40)})` : ''}`
      this.options.log?.('delivery attempt failed', { provider: provider.name, delivery: job.id, reason })
      deliveries.inc({ provider: provider.name, result: refused ? 'refused' : 'timeout' })
      // Once more on this provider after a wait, unless it refused or the wait would outlast the code.
      const retryAt = new Date(this.ctx.now().getTime() + RETRY_MS * 2 ** (job.attempts - 1))
      const next = !refused && job.attempts < TRIES_PER_PROVIDER && retryAt < job.expires_at
        ? { providerIndex: job.provider_index, attempts: job.attempts, at: retryAt }
        : { providerIndex: job.provider_index + 1, attempts: 0, at: this.ctx.now() }
      return { job, status: 'pending', next, events: notice ? [] : [{ type: 'DeliveryAttempted', data: { serial: job.serial, challenge, provider: provider.name,
        result: refused ? 'refused' : 'timeout', messageId: null, error: reason } }] }
    }
  }

  /**
   * What became of a round's jobs, in one transaction: each job's row, and the events on each method's stream
   * at the version its row holds, the rows locked first in serial order (the order of the verification's
   * statement, so neither waits for the other in a circle). A job another process took after this one's
   * lease ran out keeps that process's outcome. A message is erased once its job ended.
   */
  private async record(outcomes: readonly Outcome[]): Promise<void> {
    // A conflict or a deadlock rolls it all back: recorded again (the sends are not repeated).
    await retryOnConflict(() => this.ctx.db.transaction().execute(async (trx) => {
      const updated = (await sql<{ id: string; reported: boolean }>`
        update deliveries d set lease_until = null,
          status = case when v.status = 'sent' and d.reported then 'delivered' else v.status end,
          message = case when v.status = 'pending' then d.message else null end,
          nonce = case when v.status = 'pending' then d.nonce else null end,
          provider = coalesce(v.provider, d.provider), message_id = coalesce(v.message_id, d.message_id),
          provider_index = coalesce(v.provider_index, d.provider_index), attempts = coalesce(v.attempts, d.attempts),
          next_attempt_at = coalesce(v.next_at, d.next_attempt_at)
        from unnest(${outcomes.map((o) => o.job.id)}::bigint[], ${outcomes.map((o) => o.status)}::text[], ${outcomes.map((o) => o.provider ?? null)}::text[],
                    ${outcomes.map((o) => o.messageId ?? null)}::text[], ${outcomes.map((o) => o.next?.providerIndex ?? null)}::int[],
                    ${outcomes.map((o) => o.next?.attempts ?? null)}::int[], ${outcomes.map((o) => o.next?.at ?? null)}::timestamptz[],
                    ${outcomes.map((o) => o.job.lease_until)}::timestamptz[])
          as v(id, status, provider, message_id, provider_index, attempts, next_at, lease)
        where d.id = v.id and d.status = 'sending' and d.lease_until = v.lease
        returning d.id, d.reported`.execute(trx)).rows
      const kept = new Map(updated.map((r) => [String(r.id), r.reported]))
      const byStream = new Map<string, TokenEvent[]>()
      for (const o of outcomes) {
        if (!kept.has(o.job.id) || o.events.length === 0) continue
        // The provider's delivery report came first (Kannel may call back before we have its answer).
        const early: TokenEvent[] = o.status === 'sent' && kept.get(o.job.id)
          ? [{ type: 'CodeDelivered', data: { serial: o.job.serial, challenge: Number(o.job.challenge), provider: o.provider!, messageId: o.messageId ?? `job-${o.job.id}` } }]
          : []
        byStream.set(o.job.serial, [...(byStream.get(o.job.serial) ?? []), ...o.events, ...early])
      }
      if (byStream.size === 0) return
      // At the streams' next versions: the shared write path locks the tokens' rows first (commands/append.ts),
      // so no verification or other writer gets in between.
      await appendStreamsWithProjections({ ...this.ctx, db: trx, deferCommit: true },
        [...byStream].map(([serial, events]) => ({ streamId: tokenStream(serial), expected: 'any' as const, events })), workerMeta())
    }))
    this.ctx.store.committed()
  }

  /** The job's id and a MAC over it: a delivery report that names it is one we asked for. */
  reference(id: string): string {
    return `${id}.${this.ctx.vault.keyedHash('delivery report', id).toString('base64url').slice(0, 22)}`
  }

  /** The job a reference names, when its MAC is right. */
  jobOf(reference: string): string | null {
    const [id, mac] = reference.split('.')
    if (!id || !/^\d{1,18}$/.test(id) || !mac) return null
    const expected = Buffer.from(this.reference(id))
    const given = Buffer.from(reference)
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : null
  }

  /** A delivery report that names the job (Kannel's dlr-url): CodeDelivered, once. */
  async receiptForJob(id: string, delivered: boolean): Promise<void> {
    if (!delivered) return
    // Before the worker recorded the provider's answer: kept, and told when it does.
    const early = await sql`update deliveries set reported = true where id = ${id} and status in ('pending', 'sending')`.execute(this.ctx.db)
    if (Number(early.numAffectedRows) === 1) return
    const job = (await sql<{ provider: string | null; message_id: string | null }>`select provider, message_id from deliveries where id = ${id}`.execute(this.ctx.db)).rows[0]
    if (job?.provider) await this.receipt(job.provider, job.message_id ?? `job-${id}`, delivered, id)
  }

  /** A provider's delivery report: CodeDelivered on the method's stream, once. */
  async receipt(provider: string, messageId: string, delivered: boolean, id?: string): Promise<void> {
    if (!delivered) return
    await retryOnConflict(() => this.ctx.db.transaction().execute(async (trx) => {
      const job = (await (id
        ? sql<{ serial: string; challenge: string | null }>`update deliveries set status = 'delivered' where id = ${id} and status = 'sent' returning serial, challenge`
        : sql<{ serial: string; challenge: string | null }>`update deliveries set status = 'delivered'
            where provider = ${provider} and message_id = ${messageId} and status = 'sent' returning serial, challenge`).execute(trx)).rows[0]
      if (!job || job.challenge === null) return
      await appendStreamsWithProjections({ ...this.ctx, db: trx, deferCommit: true }, [{ streamId: tokenStream(job.serial), expected: 'any',
        events: [{ type: 'CodeDelivered', data: { serial: job.serial, challenge: Number(job.challenge), provider, messageId } }] }], workerMeta())
    }))
    this.ctx.store.committed()
  }

  /**
   * Waits, at most `ms`, until the job is handed to a provider or ends: what the user is told ("We sent a
   * code", or "We couldn't send"). A job another process works is seen by polling its row.
   */
  async outcome(id: string, ms: number): Promise<DeliveryOutcome> {
    const read = async () => (await sql<{ status: string }>`select status from deliveries where id = ${id}`.execute(this.ctx.db)).rows[0]?.status
    const done = (s: string | undefined): s is Exclude<DeliveryOutcome, 'pending'> => s === 'sent' || s === 'delivered' || s === 'failed' || s === 'expired'
    const deadline = Date.now() + ms
    let status = await read()
    while (!done(status) && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, Math.min(100, Math.max(0, deadline - Date.now())))
        function finish() {
          clearTimeout(timer)
          resolve()
        }
        this.settled.once(id, finish)
      })
      this.settled.removeAllListeners(id)
      status = await read()
    }
    return done(status) ? status : 'pending'
  }
}
