// The delivery worker: takes jobs from `deliveries` and hands each message to a provider, in failover order.
// - Any number of processes run it. A job is taken with FOR UPDATE SKIP LOCKED and a lease (a row, not a
//   position in the log): jobs are independent, one slow SMS must not hold up the others, and each job
//   carries its own tries, provider and next attempt, which a catch-up subscription's single checkpoint
//   cannot. A process killed mid-send leaves the lease to run out; the job is then tried again (a provider
//   may see a message twice only in that case).
// - A provider that fails is tried once more after a short wait, then the next one; a refusal moves on at
//   once. Nothing is tried after the code expired. Every try is an event on the method's stream, in the
//   same transaction as the job's new state; the message (it holds the code) is erased once a provider
//   took it or the job ended.
import { randomUUID, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { sql } from 'kysely'
import { appendStreamsWithProjections } from '../../commands/append.js'
import { retryOnConflict, type CommandContext } from '../../commands/context.js'
import { tokenStream, type TokenEvent } from '../../domain/token/events.js'
import type { EventMetadata } from '../../event-store/types.js'
import { destinationOf } from './challenge.js'
import type { Executor } from '../../read-models/database.js'
import { ProviderRefused, type Provider } from './providers/provider.js'

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
}

export type DeliveryOutcome = 'sent' | 'delivered' | 'failed' | 'expired' | 'pending'

const workerMeta = (): EventMetadata => ({ correlationId: randomUUID(), causationId: null, actor: { type: 'system', id: 'delivery' },
  requestId: null, sourceIp: null, userAgent: null, relyingApplication: null })

export class DeliveryWorker {
  private readonly settled = new EventEmitter()
  private timer: NodeJS.Timeout | null = null
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

  /** Polls for due jobs (other processes' too) and runs a round at once when woken. */
  start(): void {
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
    await this.running
    await Promise.all(this.providers.map((p) => p.close().catch(() => {})))
  }

  /** Takes the due jobs (leased to this process) and works them, all at once; returns how many. */
  async round(): Promise<number> {
    const now = this.ctx.now()
    const jobs = (await sql<Job>`
      update deliveries d set status = 'sending', lease_until = ${new Date(now.getTime() + LEASE_MS)}, attempts = d.attempts + 1
      where d.id in (select id from deliveries where status in ('pending', 'sending') and next_attempt_at <= ${now}
                       and (lease_until is null or lease_until < ${now}) order by id limit ${BATCH} for update skip locked)
      returning d.id, d.serial, d.challenge, d.channel, d.key_id, d.nonce, d.message, d.attempts, d.provider_index, d.expires_at`.execute(this.ctx.db)).rows
    await Promise.all(jobs.map((job) => this.work(job).catch((error) => this.options.log?.('delivery failed', { err: error, delivery: job.id }))))
    return jobs.length
  }

  private async work(job: Job): Promise<void> {
    // A notice (a method added or removed) has no challenge: its whole message is sealed, and no event follows it.
    const notice = job.challenge === null
    const challenge = Number(job.challenge)
    const now = this.ctx.now()
    const candidates = this.providers.filter((p) => p.channel === job.channel)
    const undelivered = (reason: 'expired' | 'no-provider'): TokenEvent[] => notice ? [] : [{ type: 'ChallengeUndelivered', data: { serial: job.serial, challenge, reason } }]
    if (job.expires_at <= now || !job.message) return this.finish(job, 'expired', undelivered('expired'))
    const provider = candidates[job.provider_index]
    if (!provider) return this.finish(job, 'failed', undelivered('no-provider'))
    let message: { to: string; subject: string; text: string }
    const plain = this.ctx.vault.open(notice ? `notice:${job.id}` : `delivery:${job.serial}:${challenge}`, { keyId: job.key_id, nonce: job.nonce, ciphertext: job.message })
    try {
      if (notice) message = JSON.parse(plain.toString('utf8'))
      else {
        const to = await destinationOf(this.ctx, job.serial)
        if (!to) return this.finish(job, 'failed', undelivered('no-provider'))
        message = { to, subject: 'Your sign-in code', text: plain.toString('utf8') }
      }
    } finally {
      plain.fill(0)
    }
    try {
      const { messageId } = await provider.send({ ...message, reference: this.reference(job.id) }, AbortSignal.timeout(this.options.timeoutMs))
      if (notice) return await this.finish(job, 'sent', [], { provider: provider.name, messageId })
      await this.finish(job, 'sent', [{ type: 'DeliveryAttempted', data: { serial: job.serial, challenge, provider: provider.name, result: 'accepted', messageId, error: null } }],
        { provider: provider.name, messageId })
    } catch (error) {
      const refused = error instanceof ProviderRefused
      const timeout = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError'
      const reason = refused || timeout ? (error as Error).message : `${(error as Error).name}: ${(error as Error).message}`
      const attempt: TokenEvent | null = notice ? null : { type: 'DeliveryAttempted', data: { serial: job.serial, challenge, provider: provider.name,
        result: refused ? 'refused' : 'timeout', messageId: null, error: (timeout ? 'no answer in time' : reason).slice(0, 200) } }
      // Once more on this provider after a wait, unless it refused or the wait would outlast the code.
      const retryAt = new Date(this.ctx.now().getTime() + RETRY_MS * 2 ** (job.attempts - 1))
      const next = !refused && job.attempts < TRIES_PER_PROVIDER && retryAt < job.expires_at
        ? { providerIndex: job.provider_index, attempts: job.attempts, at: retryAt }
        : { providerIndex: job.provider_index + 1, attempts: 0, at: this.ctx.now() }
      await this.retry(job, next, attempt)
    }
  }

  /** The job ends (sent, failed, expired): its message is erased, its events written, in one transaction. */
  private async finish(job: Job, status: 'sent' | 'failed' | 'expired', events: TokenEvent[], sent?: { provider: string; messageId: string | null }) {
    // Appends at 'any' version race with the method's other writers (a verification, a receipt): again on a conflict.
    await retryOnConflict(() => this.ctx.db.transaction().execute(async (trx) => {
      const updated = (await sql<{ reported: boolean }>`update deliveries set message = null, nonce = null, lease_until = null,
          status = case when ${status} = 'sent' and reported then 'delivered' else ${status} end,
          provider = ${sent?.provider ?? null}, message_id = ${sent?.messageId ?? null}
        where id = ${job.id} and status = 'sending' returning reported`.execute(trx)).rows[0]
      // Another process took it after our lease ran out and ended it: its events stand.
      if (!updated || events.length === 0) return
      // The provider's delivery report came first (Kannel may call back before we have its answer).
      const early: TokenEvent[] = status === 'sent' && updated.reported && sent
        ? [{ type: 'CodeDelivered', data: { serial: job.serial, challenge: Number(job.challenge), provider: sent.provider, messageId: sent.messageId ?? `job-${job.id}` } }]
        : []
      await this.appendToMethod(trx, job.serial, [...events, ...early])
    }))
    this.ctx.store.committed()
    this.settled.emit(job.id, status)
  }

  private async retry(job: Job, next: { providerIndex: number; attempts: number; at: Date }, attempt: TokenEvent | null) {
    await retryOnConflict(() => this.ctx.db.transaction().execute(async (trx) => {
      const updated = await sql`update deliveries set status = 'pending', lease_until = null, provider_index = ${next.providerIndex},
          attempts = ${next.attempts}, next_attempt_at = ${next.at}
        where id = ${job.id} and status = 'sending'`.execute(trx)
      if (Number(updated.numAffectedRows) !== 1 || !attempt) return
      await this.appendToMethod(trx, job.serial, [attempt])
    }))
    this.ctx.store.committed()
    this.wake()
  }

  /**
   * Appends to the method's stream at the version its row holds, like every other writer of a token: two
   * writers then meet at the stream's next version and one retries (an append at 'any' version took its
   * locks in another order than the verification's statement and could deadlock with it).
   */
  private async appendToMethod(trx: Executor, serial: string, events: TokenEvent[]): Promise<void> {
    const row = (await sql<{ version: number }>`select version from tokens where serial = ${serial} for update`.execute(trx)).rows[0]
    if (!row) return
    await appendStreamsWithProjections({ ...this.ctx, db: trx, deferCommit: true }, [{ streamId: tokenStream(serial), expected: row.version, events }], workerMeta())
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
      await this.appendToMethod(trx, job.serial, [{ type: 'CodeDelivered', data: { serial: job.serial, challenge: Number(job.challenge), provider, messageId } }])
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
