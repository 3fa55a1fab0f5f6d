// Runs the catch-up projections, each as its own checkpointed subscription.
import type { Db } from '../read-models/database.js'
import type { PostgresEventStore } from '../event-store/postgres.js'
import { CatchUpSubscription } from '../event-store/subscription.js'
import { relevant, type Projection } from './types.js'

export function projectionSubscription(
  db: Db,
  store: PostgresEventStore,
  projection: Projection,
  options: { listenUrl?: string | null; pollMs?: number; batchSize?: number; onError?: (e: unknown) => void } = {},
): CatchUpSubscription {
  return new CatchUpSubscription(db, store, {
    name: `projection:${projection.name}`,
    batchSize: options.batchSize ?? 2000,
    pollMs: options.pollMs,
    listenUrl: options.listenUrl,
    onError: options.onError,
    handle: async (trx, events) => {
      const mine = relevant(projection, events)
      if (mine.length > 0) await projection.apply(trx, mine)
    },
  })
}

export class ProjectionRunner {
  readonly subscriptions: CatchUpSubscription[]

  constructor(db: Db, store: PostgresEventStore, projections: readonly Projection[], options: Parameters<typeof projectionSubscription>[3] = {}) {
    this.subscriptions = projections.map((p) => projectionSubscription(db, store, p, options))
  }

  async start(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.start()))
  }

  async catchUp(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.catchUp()))
  }

  async stop(): Promise<void> {
    await Promise.all(this.subscriptions.map((s) => s.stop()))
  }
}
