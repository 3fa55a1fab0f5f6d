// Small measuring helpers: percentiles, memory samples, a forced GC when V8 allows one.
import os from 'node:os'
import v8 from 'node:v8'
import vm from 'node:vm'

/** Percentile (0..100) of unsorted samples, nearest-rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** Collects samples in a growable typed array (no per-sample allocation). */
export class Samples {
  private data = new Float64Array(1 << 16)
  length = 0

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = value
  }

  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort()
  }
}

export function loadavg(): [number, number, number] {
  const [a = 0, b = 0, c = 0] = os.loadavg()
  return [round(a, 2), round(b, 2), round(c, 2)]
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

export const MB = 1024 * 1024

let gcFn: (() => void) | null | undefined
/** A full GC, so memory figures compare like with like; null when V8 will not expose one. */
export function forceGc(): boolean {
  if (gcFn === undefined) {
    gcFn = (globalThis as { gc?: () => void }).gc ?? null
    if (!gcFn) {
      try {
        v8.setFlagsFromString('--expose-gc')
        gcFn = vm.runInNewContext('gc') as () => void
      } catch {
        gcFn = null
      }
    }
  }
  if (!gcFn) return false
  gcFn()
  return true
}

/** p50, p99 and max of the samples, in the unit they were pushed in, rounded to 2 digits. */
export function latencySummary(samples: Samples): { p50: number; p99: number; max: number } {
  const sorted = samples.sorted()
  return {
    p50: round(percentile(sorted, 50), 2),
    p99: round(percentile(sorted, 99), 2),
    max: round(percentile(sorted, 100), 2),
  }
}

/**
 * Peak memory while something runs: samples process.memoryUsage() on a timer and whenever `sample()` is
 * called (call it where memory is likely highest, e.g. after each batch), against a base taken at start.
 */
export class PeakMemory {
  readonly base: NodeJS.MemoryUsage
  peakRss: number
  peakHeap: number
  samples = 0
  private timer: NodeJS.Timeout | null

  constructor(intervalMs = 50) {
    this.base = process.memoryUsage()
    this.peakRss = this.base.rss
    this.peakHeap = this.base.heapUsed
    this.timer = setInterval(() => this.sample(), intervalMs)
    this.timer.unref()
  }

  sample(): void {
    const m = process.memoryUsage()
    this.samples++
    if (m.rss > this.peakRss) this.peakRss = m.rss
    if (m.heapUsed > this.peakHeap) this.peakHeap = m.heapUsed
  }

  /** Stops the timer; growth of the peaks over the base, in MB. */
  stop(): { peakRssGrowthMb: number; peakHeapGrowthMb: number } {
    if (this.timer) {
      clearInterval(this.timer)
      this.timer = null
      this.sample()
    }
    return {
      peakRssGrowthMb: (this.peakRss - this.base.rss) / MB,
      peakHeapGrowthMb: (this.peakHeap - this.base.heapUsed) / MB,
    }
  }
}

/** CPU this process used since `start` (process.cpuUsage()), in seconds, and the kernel's (system) share of it. */
export function cpuSince(start: NodeJS.CpuUsage): { seconds: number; systemShare: number } {
  const cpu = process.cpuUsage(start)
  const total = cpu.user + cpu.system
  return { seconds: total / 1e6, systemShare: total > 0 ? cpu.system / total : 0 }
}
