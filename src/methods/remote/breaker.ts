// A circuit breaker per remote service and process: after FAILURES_TO_OPEN answers in a row that were no
// answer (timeouts, refused connections, failed checks), the service is not asked for PAUSE_MS, and users
// are told so at once instead of waiting out a timeout each. Then one request goes through: its answer
// closes the breaker, its failure opens it again; a probe that never reports back frees its turn after
// PROBE_MS. A service that answers "wrong code" is working. A change of the service's configuration starts
// a new breaker (services.ts).
export const FAILURES_TO_OPEN = 5
export const PAUSE_MS = 30_000
export const PROBE_MS = 60_000

export class Breaker {
  private failures = 0
  private openUntil = 0
  private probeUntil = 0

  constructor(private readonly clock: () => number = Date.now) {}

  /** Milliseconds the service stays paused; 0 when a request may go (taking the one probe when it reopens). */
  pausedFor(): number {
    const now = this.clock()
    if (this.openUntil === 0) return 0
    if (now < this.openUntil) return this.openUntil - now
    if (now < this.probeUntil) return Math.min(this.probeUntil - now, 1000)
    this.probeUntil = now + PROBE_MS
    return 0
  }

  answered(): void {
    this.failures = 0
    this.openUntil = 0
    this.probeUntil = 0
  }

  failed(): void {
    this.probeUntil = 0
    this.failures++
    if (this.failures >= FAILURES_TO_OPEN) this.openUntil = this.clock() + PAUSE_MS
  }
}
