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
