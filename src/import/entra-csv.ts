// Microsoft Entra's hardware OATH token CSV (the file the Entra admin center uploads):
//
//   upn,serial number,secret key,time interval,manufacturer,model
//   Helga@contoso.onmicrosoft.com,1234567,2234567abcdef2234567abcdef,60,Contoso,HardwareKey
//
// The header must be the first line (case and spaces around names do not matter; a UTF-8 BOM is allowed),
// otherwise the whole file is refused with UnusableFile. Every other non-blank line is one token, TOTP with
// SHA-1 and 6 digits as Entra defines them:
//
//   upn            empty for an unassigned token, else name@domain
//   serial number  1-64 letters, digits, '-', '_', '.'; a serial repeated in the file is refused after its first line
//   secret key     Base32 (A-Z, 2-7, any case, spaces ignored, '=' padding allowed), at most 128 characters,
//                  at least 10 bytes once decoded
//   time interval  30 or 60 (seconds)
//   manufacturer, model   optional, at most 100 characters each
//
// Fields may be "quoted" as Excel writes them, but no field may run over a line break. A bad line is yielded as
// a RejectedRow with its line number and one reason; the file goes on. Reasons never contain the secret key.
// A rejected row carries its serial only when the serial itself is valid.
//
// Streaming: lines are read as the input arrives, so memory does not grow with the file, except for the set
// of serials already seen (for duplicates), about 100 bytes a token.

import { decodeBase32, normalizeBase32 } from './base32.js'
import { csvLines } from './csv-lines.js'
import { SerialsSeen, isUpn, rejected, seedLengthProblem, serialProblem, shown } from './fields.js'
import { physicalLines, type InventoryInput } from './lines.js'
import { UnusableFile, type ImportedToken, type ParsedRow } from './types.js'

export const ENTRA_COLUMNS = ['upn', 'serial number', 'secret key', 'time interval', 'manufacturer', 'model'] as const
export const ENTRA_HEADER = ENTRA_COLUMNS.join(',')

const MAX_SECRET_CHARACTERS = 128
const MAX_LABEL_LENGTH = 100

/** Whether these fields (as split from the first line) are Entra's header. */
export function isEntraHeader(fields: readonly string[]): boolean {
  return fields.length === ENTRA_COLUMNS.length &&
    fields.every((f, i) => f.trim().toLowerCase() === ENTRA_COLUMNS[i])
}

function unusable(why: string): UnusableFile {
  return new UnusableFile(`${why}: an Entra hardware token file must start with the header line "${ENTRA_HEADER}"`)
}

export async function* parseEntraCsv(input: InventoryInput): AsyncGenerator<ParsedRow> {
  const serials = new SerialsSeen()
  let headerSeen = false
  for await (const batch of csvLines(physicalLines(input), { quotes: true })) {
    for (const row of batch) {
      if (!headerSeen) {
        // Never quote the first line back: without a header it may well be a token with its secret.
        if (row.line !== 1) throw unusable('the first line is blank')
        if (row.problem !== undefined) throw unusable('the first line is not CSV')
        if (!isEntraHeader(row.fields)) throw unusable('the first line is not the expected header')
        headerSeen = true
      } else if (row.problem !== undefined) {
        yield rejected(row.line, null, row.problem)
      } else {
        yield readRow(row.line, row.fields, serials)
      }
    }
  }
  if (!headerSeen) throw unusable('the file is empty')
}

function readRow(line: number, raw: string[], serials: SerialsSeen): ParsedRow {
  const fields = raw.map((f) => f.trim())
  const serial = fields[1] ?? ''
  const serialOk = serialProblem(serial) === null
  const reject = (reason: string) => rejected(line, serialOk ? serial : null, reason)

  if (fields.length !== ENTRA_COLUMNS.length) {
    return reject(`expected ${ENTRA_COLUMNS.length} columns (${ENTRA_COLUMNS.join(', ')}) but found ${fields.length}`)
  }
  const [upnText, , secretText, intervalText, manufacturer, model] = fields as [string, string, string, string, string, string]

  const badSerial = serialProblem(serial)
  if (badSerial) return reject(badSerial)
  const repeat = serials.check(serial, line)
  if (repeat) return reject(repeat)

  if (upnText !== '' && !isUpn(upnText)) return reject('upn is not a user principal name like name@example.com')

  const compact = secretText.replace(/\s+/g, '')
  if (compact === '') return reject('secret key is missing')
  if (compact.length > MAX_SECRET_CHARACTERS) return reject(`secret key is longer than ${MAX_SECRET_CHARACTERS} characters`)
  const normalized = normalizeBase32(compact)
  if (normalized === null) return reject('secret key is not Base32 (letters A-Z and digits 2-7)')
  const short = seedLengthProblem('secret key', Math.floor((normalized.length * 5) / 8))
  if (short) return reject(short)

  let period: number
  if (intervalText === '30') period = 30
  else if (intervalText === '60') period = 60
  else return reject(`unknown time interval${shown(intervalText)} (expected 30 or 60)`)

  if (manufacturer.length > MAX_LABEL_LENGTH) return reject(`manufacturer is longer than ${MAX_LABEL_LENGTH} characters`)
  if (model.length > MAX_LABEL_LENGTH) return reject(`model is longer than ${MAX_LABEL_LENGTH} characters`)

  const token: ImportedToken = {
    line,
    serial,
    kind: 'totp',
    algorithm: 'SHA1',
    digits: 6,
    period,
    counter: null,
    seed: decodeBase32(normalized),
    upn: upnText === '' ? null : upnText,
    manufacturer: manufacturer === '' ? null : manufacturer,
    model: model === '' ? null : model,
  }
  return { ok: true, token }
}
