// Token inventory files: pick the parser for a format, or guess the format from the first line.
// Formats and rules are described at the top of entra-csv.ts and oath-csv.ts.

import { parse } from 'csv-parse/sync'
import { isEntraHeader, parseEntraCsv } from './entra-csv.js'
import type { InventoryInput } from './lines.js'
import { parseOathCsv } from './oath-csv.js'
import { parsePskc, type PskcSecret } from './pskc.js'
export type { PskcSecret } from './pskc.js'
import type { InventoryFormat, ParsedRow } from './types.js'

export { ENTRA_HEADER, parseEntraCsv } from './entra-csv.js'
export { parseOathCsv } from './oath-csv.js'
export type { InventoryInput } from './lines.js'
export * from './types.js'

/** The rows of an inventory file in the given format; throws UnusableFile (while iterating) for a file that cannot be used. */
export function parseInventory(format: InventoryFormat, input: InventoryInput, secret: PskcSecret = {}): AsyncGenerator<ParsedRow> {
  switch (format) {
    case 'pskc':
      return parsePskc(input, secret)
    case 'entra':
      return parseEntraCsv(input)
    case 'oath':
      return parseOathCsv(input)
    default:
      throw new Error(`unknown inventory format ${JSON.stringify(format satisfies never)}`)
  }
}

/** 'pskc' when a file's first bytes are XML (after a BOM and white space), else null: a CSV format then. */
export function looksLikeXml(start: string): boolean {
  return /^\uFEFF?\s*</.test(start)
}

/** 'entra' when the line is Entra's CSV header (a BOM, case, spaces and quotes allowed), else null. */
export function detectFormat(firstLine: string): InventoryFormat | null {
  const line = firstLine.replace(/^\uFEFF/, '').replace(/\r?\n$/, '')
  if (line.length > 1000 || /[\r\n]/.test(line)) return null
  try {
    const records = parse(line, { trim: true, relax_column_count: true }) as string[][]
    return records.length === 1 && isEntraHeader(records[0]!) ? 'entra' : null
  } catch {
    return null
  }
}
