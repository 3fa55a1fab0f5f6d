// A circuit breaker per remote service and process: after FAILURES_TO_OPEN answers in a row that were no
// answer (timeouts, refused connections, failed checks), the service is not asked for PAUSE_MS, and users
// are told so at once instead of waiting out a timeout each. Then one request goes through: its answer
// closes the breaker, its failure opens it again. A service that answers "wrong code" is working.
export const FAILURES_TO_OPEN = 5
export const PAUSE_MS = 30_000

export class Breaker {
  private failures = 0
  private openUntil = 0
  private probing = false

  constructor(private readonly clock: () => number = Date.now) {}

  /** Milliseconds the service stays paused; 0 when a request may go (taking the one probe when it reopens). */
  pausedFor(): number {
    const now = this.clock()
    if (this.openUntil === 0) return 0
    if (now < this.openUntil) return this.openUntil - now
    if (this.probing) return 1000
    this.probing = true
    return 0
  }

  answered(): void {
    this.failures = 0
    this.openUntil = 0
    this.probing = false
  }

  failed(): void {
    this.probing = false
    this.failures++
    if (this.failures >= FAILURES_TO_OPEN) this.openUntil = this.clock() + PAUSE_MS
  }
}
