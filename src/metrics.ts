// Prometheus metrics (prom-client). The counters and histograms of what the gateway does are the
// process's own (a module registry: commands count where they decide); what is read at scrape time (the
// catch-up projections' lag, the database pool) is per app (plugins/metrics.ts). Names and labels are
// documented in the README; labels take bounded values only (a route's pattern, never its URL).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export const processRegistry = new Registry()
collectDefaultMetrics({ register: processRegistry, prefix: 'tessera_' })

export const httpRequests = new Histogram({
  name: 'tessera_http_request_duration_seconds',
  help: 'HTTP requests by method, route pattern and status, and how long they took',
  labelNames: ['method', 'route', 'status'],
  buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [processRegistry],
})

export const verifications = new Counter({
  name: 'tessera_verifications_total',
  help: 'Codes checked at sign-in and step-up, by sign-in method and result (accepted, or the refusal)',
  labelNames: ['method', 'result'],
  registers: [processRegistry],
})

export const locks = new Counter({
  name: 'tessera_token_locks_total',
  help: 'Tokens locked after too many wrong codes, by sign-in method',
  labelNames: ['method'],
  registers: [processRegistry],
})

export const signIns = new Counter({
  name: 'tessera_password_checks_total',
  help: 'Password checks at sign-in and /activate, by result (ok, wrong, throttled, disabled)',
  labelNames: ['result'],
  registers: [processRegistry],
})

export const deliveries = new Counter({
  name: 'tessera_delivery_attempts_total',
  help: 'Messages handed to a provider (codes, notices), by provider and result (accepted, refused, timeout)',
  labelNames: ['provider', 'result'],
  registers: [processRegistry],
})

export const remoteVerifications = new Counter({
  name: 'tessera_remote_checks_total',
  help: 'Codes of remote credentials, by service and outcome (accepted, rejected, replayed, unavailable, paused)',
  labelNames: ['service', 'outcome'],
  registers: [processRegistry],
})

export const exportBytes = new Counter({
  name: 'tessera_export_bytes_total',
  help: 'Bytes of audit exports taken by their destination (export progress: its rate while one runs)',
  registers: [processRegistry],
})

export const exportsRunning = new Gauge({
  name: 'tessera_exports_running',
  help: 'Audit exports running now',
  registers: [processRegistry],
})

export const appends = new Histogram({
  name: 'tessera_event_append_duration_seconds',
  help: 'Appends to the event store, by path (store: the general one; token: the one-statement token write) and outcome',
  labelNames: ['path', 'outcome'],
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [processRegistry],
})

export const imports = new Counter({
  name: 'tessera_import_rows_total',
  help: 'Inventory rows read by imports, by format and result (imported, refused)',
  labelNames: ['format', 'result'],
  registers: [processRegistry],
})

/** Times an append: the outcome is ok, conflict (another writer first) or error. */
export async function timedAppend<T>(path: 'store' | 'token', append: () => Promise<T>): Promise<T> {
  const end = appends.startTimer({ path })
  try {
    const result = await append()
    end({ outcome: 'ok' })
    return result
  } catch (error) {
    end({ outcome: (error as Error).name === 'WrongExpectedVersion' ? 'conflict' : 'error' })
    throw error
  }
}
