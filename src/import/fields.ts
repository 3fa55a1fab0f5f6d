// Checks and wording shared by the inventory parsers.
//
// Reasons are plain words for the person fixing the file. They quote a value from the line only through
// `shown()`, which refuses anything long enough to be (part of) a seed: every accepted seed is at least
// 10 bytes, i.e. 16 Base32 or 20 hex characters.

import type { ParsedRow, RejectedRow } from './types.js'

export const MIN_SEED_BYTES = 10
export const MAX_SEED_BYTES = 128

const SERIAL = /^[A-Za-z0-9._-]{1,64}$/
const UPN = /^[^\s@]+@[^\s@]+$/
const MAX_UPN_LENGTH = 256

/** ` "value"` when the value is short and plain enough to repeat in a reason, else ''. */
export function shown(value: string): string {
  return value.length > 0 && value.length <= 12 && /^[A-Za-z0-9:._-]+$/.test(value) ? ` "${value}"` : ''
}

/** Why the serial cannot be used, or null. */
export function serialProblem(serial: string): string | null {
  if (serial === '') return 'serial is missing'
  if (!SERIAL.test(serial)) return "serial must be 1 to 64 letters, digits, '-', '_' or '.'"
  return null
}

/** Whether the text looks like a user principal name (name@domain). */
export function isUpn(value: string): boolean {
  return value.length <= MAX_UPN_LENGTH && UPN.test(value)
}

/** Remembers the line of each serial, to refuse the second and later rows that repeat one. */
export class SerialsSeen {
  private readonly firstLine = new Map<string, number>()

  /** The reason to refuse this row as a repeat, or null (and the serial is remembered) when it is the first. */
  check(serial: string, line: number): string | null {
    const first = this.firstLine.get(serial)
    if (first !== undefined) return `duplicate serial in the file (first on line ${first})`
    this.firstLine.set(serial, line)
    return null
  }
}

export function rejected(line: number, serial: string | null, reason: string): ParsedRow {
  const row: RejectedRow = { line, serial: serial === '' ? null : serial, reason }
  return { ok: false, rejected: row }
}

export function seedLengthProblem(what: string, bytes: number): string | null {
  if (bytes < MIN_SEED_BYTES) return `${what} is too short: ${bytes} bytes, at least ${MIN_SEED_BYTES} are needed`
  if (bytes > MAX_SEED_BYTES) return `${what} is too long: ${bytes} bytes, at most ${MAX_SEED_BYTES} are allowed`
  return null
}
