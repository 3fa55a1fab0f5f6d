// Physical lines of an inventory file, read as it streams in: only the current line is held in memory.
//
// A line ends at "\r\n", "\n" or a lone "\r" (each counts as one line break), so line numbers are the ones an
// editor shows; line 1 is the first line of the file. A UTF-8 byte order mark at the start is dropped.
// A line longer than MAX_LINE_LENGTH characters is not kept: it comes out as `tooLong` with its number, and
// the rest of it is skipped unread, so a binary file without line breaks cannot fill the memory.

import { UnusableFile } from './types.js'

/** What the parsers accept: a file or upload stream, or any async source of chunks. */
export type InventoryInput = AsyncIterable<Buffer | string> | NodeJS.ReadableStream

/** Longest line kept, in characters. A real inventory line is well under 1,000. */
export const MAX_LINE_LENGTH = 65_536

export interface PhysicalLine {
  /** 1-based line number in the file. */
  line: number
  /** The line without its line break; '' when `tooLong`. */
  text: string
  /** The line was longer than the limit; its text was dropped. */
  tooLong: boolean
}

const LINE_BREAK = /[\r\n]/g

/** Splits text fed in pieces into lines; a "\r\n" split across two pieces is still one break. */
export class LineSplitter {
  private parts: string[] = []
  private length = 0
  private skipping = false
  private afterCr = false
  private line = 1

  constructor(private readonly maxLength = MAX_LINE_LENGTH) {}

  /** The lines that `text` completes. */
  push(text: string): PhysicalLine[] {
    const out: PhysicalLine[] = []
    const n = text.length
    let pos = 0
    if (this.afterCr && n > 0) {
      this.afterCr = false
      if (text.charCodeAt(0) === 10) pos = 1
    }
    while (pos < n) {
      LINE_BREAK.lastIndex = pos
      const m = LINE_BREAK.exec(text)
      if (!m) {
        this.append(pos === 0 ? text : text.slice(pos))
        break
      }
      this.append(text.slice(pos, m.index))
      this.endLine(out)
      pos = m.index + 1
      if (text.charCodeAt(m.index) === 13) {
        if (pos < n) {
          if (text.charCodeAt(pos) === 10) pos++
        } else {
          this.afterCr = true
        }
      }
    }
    return out
  }

  /** The last line, when the file does not end with a line break. */
  end(): PhysicalLine[] {
    const out: PhysicalLine[] = []
    if (this.length > 0 || this.skipping) this.endLine(out)
    return out
  }

  private append(s: string): void {
    if (this.skipping || s.length === 0) return
    if (this.length + s.length > this.maxLength) {
      this.skipping = true
      this.parts = []
      this.length = 0
      return
    }
    this.parts.push(s)
    this.length += s.length
  }

  private endLine(out: PhysicalLine[]): void {
    if (this.skipping) out.push({ line: this.line, text: '', tooLong: true })
    else out.push({ line: this.line, text: this.parts.length === 1 ? this.parts[0]! : this.parts.join(''), tooLong: false })
    this.parts = []
    this.length = 0
    this.skipping = false
    this.line++
  }
}

function isUtf16Bom(chunk: Uint8Array): boolean {
  return chunk.length >= 2 && ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff))
}

/**
 * The lines of `input` in batches (the lines each chunk completes), decoded as UTF-8 (invalid bytes become
 * U+FFFD). Throws UnusableFile for a UTF-16 file (Excel's "Unicode text"), whose every line would otherwise be
 * refused one by one.
 */
export async function* physicalLines(input: InventoryInput, maxLength = MAX_LINE_LENGTH): AsyncGenerator<PhysicalLine[]> {
  const splitter = new LineSplitter(maxLength)
  const decoder = new TextDecoder('utf-8') // drops a leading UTF-8 BOM
  let bytesPending = false
  let firstBytes = true
  let started = false
  for await (const chunk of input as AsyncIterable<Buffer | Uint8Array | string>) {
    let text: string
    if (typeof chunk === 'string') {
      text = bytesPending ? decoder.decode() + chunk : chunk
      bytesPending = false
    } else {
      if (firstBytes && !started && isUtf16Bom(chunk)) {
        throw new UnusableFile('the file is UTF-16 text; save it as UTF-8 (in Excel: "CSV UTF-8") and import it again')
      }
      firstBytes = false
      text = decoder.decode(chunk, { stream: true })
      bytesPending = true
    }
    if (!started) {
      if (text.length === 0) continue
      started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // a BOM in string input
    }
    const lines = splitter.push(text)
    if (lines.length > 0) yield lines
  }
  const last = [...(bytesPending ? splitter.push(decoder.decode()) : []), ...splitter.end()]
  if (last.length > 0) yield last
}
