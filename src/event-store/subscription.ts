// Catch-up subscriptions: read from a stored checkpoint, hand each batch to a handler inside a
// transaction that also moves the checkpoint, so a crash replays a batch and never loses or doubles it.
// The checkpoint row is locked for the batch, so two processes never run the same subscription at once.
// Wake-ups: appends in this process at once, other processes by LISTEN/NOTIFY, and a poll as the fallback.
import { sql, type Transaction } from 'kysely'
import pg from 'pg'
import type { Database, Db } from '../read-models/database.js'
import { NOTIFY_CHANNEL, type PostgresEventStore } from './postgres.js'
import { START, type GlobalPosition, type RecordedEvent } from './types.js'

export type BatchHandler = (trx: Transaction<Database>, events: RecordedEvent[]) => Promise<void>

export async function readCheckpoint(db: Db, name: string): Promise<GlobalPosition> {
  const row = await db.selectFrom('subscription_checkpoints').select(['tx_id', 'position'])
    .where('name', '=', name).executeTakeFirst()
  return row ? { txId: String(row.tx_id), position: Number(row.position) } : START
}

/** Processes at most one batch; returns how many events it handled. */
export async function processBatch(
  db: Db,
  store: PostgresEventStore,
  name: string,
  batchSize: number,
  handle: BatchHandler,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`insert into subscription_checkpoints (name, tx_id, position) values (${name}, '0', 0)
              on conflict (name) do nothing`.execute(trx)
    const row = await sql<{ tx_id: string; position: string }>`
      select tx_id, position from subscription_checkpoints where name = ${name} for update`.execute(trx)
    const at = { txId: row.rows[0]!.tx_id, position: Number(row.rows[0]!.position) }
    const batch = await store.readAll(at, batchSize, trx)
    if (batch.events.length === 0) return 0
    await handle(trx, batch.events)
    await sql`update subscription_checkpoints set tx_id = ${batch.next.txId}::xid8, position = ${batch.next.position},
              updated_at = now() where name = ${name}`.execute(trx)
    return batch.events.length
  })
}

export interface SubscriptionOptions {
  name: string
  handle: BatchHandler
  batchSize?: number
  /** Poll this often when no wake-up comes (ms). */
  pollMs?: number
  /** A connection string for LISTEN; without it other processes' appends are seen by polling only. */
  listenUrl?: string | null
  onError?: (error: unknown) => void
}

export class CatchUpSubscription {
  private running = false
  private stopping = false
  private wake: (() => void) | null = null
  private pending = false
  private loop: Promise<void> | null = null
  private listener: pg.Client | null = null
  private readonly onAppended = () => this.nudge()

  constructor(
    private readonly db: Db,
    private readonly store: PostgresEventStore,
    private readonly options: SubscriptionOptions,
  ) {}

  /** Handles every event there is now; resolves when caught up, or after the batch in hand once stopped. */
  /**
   * Processes batches until every event committed before the call is handled. A short batch is not
   * enough: a transaction that is still running holds back the events of later ones (readAll reads
   * below the oldest running transaction), so it waits for the checkpoint to reach the head seen at the
   * call, for at most `waitMs`.
   */
  async catchUp(waitMs = 10_000): Promise<number> {
    const size = this.options.batchSize ?? 1000
    const head = (await sql<{ tx_id: string; position: string }>`
      select tx_id, position from events order by tx_id desc, position desc limit 1`.execute(this.db)).rows[0]
    const deadline = Date.now() + waitMs
    let total = 0
    for (;;) {
      const n = await processBatch(this.db, this.store, this.options.name, size, this.options.handle)
      total += n
      // A stop during a long backlog takes effect between batches; the checkpoint says where to go on.
      if (this.stopping) return total
      if (n === size) continue
      if (!head || Date.now() > deadline) return total
      const at = (await sql<{ reached: boolean }>`
        select (tx_id, position) >= (${head.tx_id}::xid8, ${head.position}::bigint) as reached
        from subscription_checkpoints where name = ${this.options.name}`.execute(this.db)).rows[0]
      if (at?.reached) return total
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.stopping = false
    this.store.wakeups.on('appended', this.onAppended)
    if (this.options.listenUrl) {
      const client = new pg.Client({ connectionString: this.options.listenUrl })
      client.on('error', () => {
        // The poll keeps the subscription going while LISTEN is down.
      })
      client.on('notification', this.onAppended)
      try {
        await client.connect()
        if (!this.running) {
          await client.end()
          return
        }
        await client.query(`listen ${NOTIFY_CHANNEL}`)
        this.listener = client
      } catch (error) {
        this.options.onError?.(error)
        await client.end().catch(() => {})
      }
    }
    this.loop = this.run()
  }

  private nudge(): void {
    this.pending = true
    this.wake?.()
  }

  private async run(): Promise<void> {
    const pollMs = this.options.pollMs ?? 1000
    while (this.running) {
      this.pending = false
      try {
        // The background loop does not wait behind a running transaction: the next wake-up or poll goes on.
        await this.catchUp(0)
      } catch (error) {
        this.options.onError?.(error)
      }
      if (!this.running || this.pending) continue
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = null
    }
  }

  async stop(): Promise<void> {
    this.running = false
    this.stopping = true
    this.store.wakeups.off('appended', this.onAppended)
    this.wake?.()
    await this.loop
    await this.listener?.end().catch(() => {})
    this.listener = null
  }
}
