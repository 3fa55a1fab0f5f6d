// The printed table. One row per scenario; checks and notes below it.
import { round } from './stats.js'

export interface ReportRow {
  scenario: string
  unit: string
  operations: number
  seconds: number
  opsPerSec: number
  p50Ms?: number
  p99Ms?: number
  targetOpsPerSec: number
  pass: boolean
  lines: string[]
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-'
  return round(n, digits).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

export function table(rows: readonly ReportRow[]): string {
  const header = ['scenario', 'operations', 'seconds', 'ops/s', 'p50 ms', 'p99 ms', 'target ops/s', 'result']
  const body = rows.map((r) => [
    r.scenario,
    `${fmt(r.operations)} ${r.unit}`,
    fmt(r.seconds, 2),
    fmt(r.opsPerSec),
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    `>= ${fmt(r.targetOpsPerSec)}`,
    r.pass ? 'PASS' : 'FAIL',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const left = new Set([0, 7])
  const line = (cells: string[]) =>
    cells.map((c, i) => (left.has(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)]
  for (const r of rows) for (const l of r.lines) out.push(`  ${r.scenario}: ${l}`)
  return out.join('\n')
}
