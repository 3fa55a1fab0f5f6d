// CSV fields of each physical line, split by csv-parse's streaming parser.
//
// Every record must fit on one line: no field of an inventory file holds a line break. That is what keeps one
// bad line from spoiling the rest. csv-parse, fed a whole file, lets an unclosed quote swallow every following
// line into one field, and after an error it does not reliably find its way back to the next record. So each
// line is checked here first (`quotingProblem`): a line whose quotes csv-parse would refuse is reported as a
// problem on that line and never reaches the parser; the others are written, batch by batch as the file
// streams in, to one csv-parse stream, and each record it returns belongs to the next line written.
// A line without any quote (most lines of a real file) is split here instead (`plainFields`), as csv-parse
// would split it, for a fraction of the cost. Blank lines are skipped.
//
// Errors never carry field text (csv-parse's messages quote field values, which may be a secret).

import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import { CsvError, parse, type Parser } from 'csv-parse'
import { MAX_LINE_LENGTH, type PhysicalLine } from './lines.js'
import { UnusableFile } from './types.js'

export type CsvLine = { line: number; fields: string[]; problem?: undefined } | { line: number; fields?: undefined; problem: string }

export interface CsvLineOptions {
  /** Honour "double quotes" around fields (RFC 4180). When false, a quote is an ordinary character. */
  quotes: boolean
}

/**
 * Whitespace allowed around a quoted field: space and tab. csv-parse's `trim` also takes other Unicode spaces
 * there, but not consistently when they are several bytes long, so a line with one of those next to a quote
 * is refused here (being stricter than csv-parse is safe; being looser is not).
 */
function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09
}

/**
 * Why this single line may not be given to csv-parse (comma-delimited, "-quoted and "-escaped, with `trim`),
 * or null when csv-parse reads it as exactly one record. A quoted field may have spaces or tabs around it; a
 * quote anywhere else in a field, text after a closing quote, or a quote left open are problems.
 */
export function quotingProblem(text: string): string | null {
  if (!text.includes('"')) return null
  const n = text.length
  let i = 0
  for (;;) {
    // at the start of a field
    let j = i
    while (j < n && isBlank(text.charCodeAt(j))) j++
    if (j < n && text.charCodeAt(j) === 34) {
      j++
      for (;;) {
        const q = text.indexOf('"', j)
        if (q < 0) return 'a quoted field is not closed on this line'
        if (text.charCodeAt(q + 1) === 34) {
          j = q + 2
          continue
        }
        j = q + 1
        break
      }
      while (j < n && isBlank(text.charCodeAt(j))) j++
      if (j === n) return null
      if (text.charCodeAt(j) !== 44) return 'text follows a closing quote (quotes must enclose a whole field)'
      i = j + 1
      continue
    }
    const comma = text.indexOf(',', i)
    const end = comma < 0 ? n : comma
    const quote = text.indexOf('"', i)
    if (quote >= 0 && quote < end) return 'a quote inside a field that does not start with one (quotes must enclose a whole field)'
    if (comma < 0) return null
    i = comma + 1
  }
}

/** A surrogate not part of a pair (possible only in string input), which csv-parse reads as U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * The fields of a line that has no quote (or where quotes are ordinary characters), exactly as csv-parse
 * with `trim` returns them: split at every comma, whitespace around each field removed (csv-parse trims the
 * same characters as String.prototype.trim). Null when the line needs the parser after all.
 */
export function plainFields(text: string): string[] | null {
  if (LONE_SURROGATE.test(text)) return null
  const fields = text.split(',')
  for (let i = 0; i < fields.length; i++) fields[i] = fields[i]!.trim()
  return fields
}

interface Pending {
  line: number
  problem: string | null
  /** Split without the parser. */
  fields?: string[]
}

/**
 * The fields of each non-blank line, with whitespace around them trimmed, or the problem that kept a line
 * from being read; in file order, in batches as the lines arrive.
 */
export async function* csvLines(batches: AsyncIterable<PhysicalLine[]>, options: CsvLineOptions): AsyncGenerator<CsvLine[]> {
  // Records are taken as csv-parse finishes them (it holds the last one of a write back until it sees the
  // next few characters) and paired, in order, with the lines waiting for them.
  const records: string[][] = []
  const waiting: Pending[] = []
  const parser: Parser = parse({
    delimiter: ',',
    record_delimiter: '\n',
    quote: options.quotes ? '"' : false,
    trim: true,
    relax_column_count: true,
    skip_empty_lines: false,
    bom: false,
    on_record: (record: string[]) => {
      records.push(record)
      return null // nothing goes on to the readable side
    },
  })
  parser.on('error', () => {}) // seen through parser.errored and the promises below
  parser.resume()

  const take = (): CsvLine[] => {
    const out: CsvLine[] = []
    let w = 0
    let r = 0
    for (; w < waiting.length; w++) {
      const entry = waiting[w]!
      if (entry.problem !== null) {
        out.push({ line: entry.line, problem: entry.problem })
      } else if (entry.fields !== undefined) {
        out.push({ line: entry.line, fields: entry.fields })
      } else {
        const fields = records[r]
        if (fields === undefined) break
        r++
        out.push({ line: entry.line, fields })
      }
    }
    waiting.splice(0, w)
    records.splice(0, r)
    return out
  }
  const unreadable = (err: unknown): never => {
    if (err instanceof UnusableFile) throw err
    const line = waiting.find((e) => e.problem === null && e.fields === undefined)?.line
    const code = err instanceof CsvError ? ` (${err.code})` : ''
    throw new UnusableFile(`${line === undefined ? 'the file' : `line ${line}`} could not be read as CSV${code}`)
  }

  try {
    for await (const batch of batches) {
      const texts: string[] = []
      for (const l of batch) {
        let problem: string | null
        if (l.tooLong) problem = `the line is longer than ${MAX_LINE_LENGTH} characters`
        else if (l.text.trim() === '') continue
        else if (!options.quotes || !l.text.includes('"')) {
          const fields = plainFields(l.text)
          if (fields !== null) {
            waiting.push({ line: l.line, problem: null, fields })
            continue
          }
          problem = null
        } else problem = quotingProblem(l.text)
        waiting.push({ line: l.line, problem })
        if (problem === null) texts.push(l.text)
      }
      if (texts.length > 0) {
        const more = parser.write(texts.join('\n') + '\n')
        if (parser.errored) unreadable(parser.errored)
        if (!more) await once(parser, 'drain').catch(unreadable)
      }
      const out = take()
      if (out.length > 0) yield out
    }
    parser.end()
    await finished(parser).catch(unreadable)
    const out = take()
    if (out.length > 0) yield out
    if (waiting.length > 0) unreadable(null)
  } finally {
    parser.destroy()
  }
}
