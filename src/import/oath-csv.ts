// privacyIDEA's OATH CSV token import file. No header; one token a line; fields are split at every comma (quotes
// are ordinary characters, as in privacyIDEA) and trimmed; blank lines and lines starting with '#' are skipped.
//
// Version 1 (the default):
//
//   serial, key, type, otplen, timestep
//   OATH0001, 3132333435363738393031323334353637383930, totp, 8, 30
//
// Version 2, chosen by a first line "# version: 2", puts the user first:
//
//   # version: 2
//   user, user resolver, user realm, serial, key, type, otplen, timestep
//   helga, ldap, contoso.com, OATH0002, 3132333435363738393031323334353637383930, hotp, 6
//
//   serial    1-64 letters, digits, '-', '_', '.'; a serial repeated in the file is refused after its first line
//   key       the seed in hex, an even number of digits, 10 to 128 bytes
//   type      totp or hotp (any case); when the column is absent or empty, hotp, as in privacyIDEA
//   otplen    6 or 8; default 6
//   timestep  for totp: 30 or 60; default 30. Tessera also reads a hash algorithm here, alone or after the step:
//             "sha256", "60:sha512" (sha1, sha256, sha512; default sha1). For hotp a number here is ignored
//             (privacyIDEA reads the column as a time step, which HOTP does not use) and the counter starts at
//             0; a hash algorithm still applies.
//   user      (version 2) the upn: empty for an unassigned token; "name@domain" as given; a name without '@'
//             becomes name@realm, and is refused when the realm column is empty. The resolver is ignored.
//
// Columns after the last one are allowed only when empty (a trailing comma). Any other "# version: N" than 1 or
// 2 makes the file unusable. A bad line is yielded as a RejectedRow with its line number and one reason; reasons
// never contain the key. A rejected row carries its serial only when the serial itself is valid.

import { csvLines } from './csv-lines.js'
import { SerialsSeen, isUpn, rejected, seedLengthProblem, serialProblem, shown } from './fields.js'
import { physicalLines, type InventoryInput, type PhysicalLine } from './lines.js'
import { UnusableFile, type ImportedToken, type OtpAlgorithm, type ParsedRow } from './types.js'

const V1_COLUMNS = ['serial', 'key', 'type', 'otplen', 'timestep'] as const
const V2_COLUMNS = ['user', 'user resolver', 'user realm', ...V1_COLUMNS] as const

const VERSION_LINE = /^#\s*version:\s*(\d+)/i
const HEX = /^[0-9A-Fa-f]+$/
const STEP_COLUMN = /^(?:(\d{1,9})(?:\s*:\s*(sha1|sha256|sha512))?|(sha1|sha256|sha512))?$/i
const ALGORITHMS: Record<string, OtpAlgorithm> = { sha1: 'SHA1', sha256: 'SHA256', sha512: 'SHA512' }

export async function* parseOathCsv(input: InventoryInput): AsyncGenerator<ParsedRow> {
  let version = 1

  async function* dataLines(): AsyncGenerator<PhysicalLine[]> {
    for await (const batch of physicalLines(input)) {
      yield batch.filter((l) => {
        if (l.tooLong) return true
        const text = l.text.trimStart()
        if (l.line === 1) {
          const m = VERSION_LINE.exec(text)
          if (m) {
            version = Number(m[1])
            if (version !== 1 && version !== 2) {
              throw new UnusableFile(`unknown OATH CSV version ${m[1]!.slice(0, 6)} on line 1: versions 1 and 2 are known`)
            }
            return false
          }
        }
        return !text.startsWith('#')
      })
    }
  }

  const serials = new SerialsSeen()
  for await (const batch of csvLines(dataLines(), { quotes: false })) {
    for (const row of batch) {
      if (row.problem !== undefined) yield rejected(row.line, null, row.problem)
      else yield readRow(row.line, row.fields.map((f) => f.trim()), version === 2, serials)
    }
  }
}

function readRow(line: number, all: string[], v2: boolean, serials: SerialsSeen): ParsedRow {
  const names = v2 ? V2_COLUMNS : V1_COLUMNS
  const fields = all.slice()
  while (fields.length > names.length && fields[fields.length - 1] === '') fields.pop()
  const at = (name: (typeof names)[number]) => fields[(names as readonly string[]).indexOf(name)] ?? ''

  const serial = at('serial')
  const serialOk = serialProblem(serial) === null
  const reject = (reason: string) => rejected(line, serialOk ? serial : null, reason)

  const required = names.indexOf('key') + 1
  if (fields.length < required) {
    return reject(`expected at least ${required} columns (${names.slice(0, required).join(', ')}) but found ${fields.length}`)
  }
  if (fields.length > names.length) {
    return reject(`expected at most ${names.length} columns (${names.join(', ')}) but found ${fields.length}`)
  }

  const badSerial = serialProblem(serial)
  if (badSerial) return reject(badSerial)
  const repeat = serials.check(serial, line)
  if (repeat) return reject(repeat)

  let upn: string | null = null
  if (v2) {
    const user = at('user')
    const realm = at('user realm')
    if (user !== '') {
      if (user.includes('@')) upn = user
      else if (realm !== '') upn = `${user}@${realm}`
      else return reject('user has no domain: write it as name@domain or fill in the user realm column')
      if (!isUpn(upn)) return reject('user is not a user principal name like name@example.com')
    }
  }

  const key = at('key')
  if (key === '') return reject('key is missing')
  if (!HEX.test(key)) return reject('key is not hexadecimal (digits 0-9 and letters a-f)')
  if (key.length % 2 !== 0) return reject('key has an odd number of hex digits')
  const badLength = seedLengthProblem('key', key.length / 2)
  if (badLength) return reject(badLength)

  const typeText = at('type').toLowerCase()
  const kind = typeText === '' ? 'hotp' : typeText
  if (kind !== 'totp' && kind !== 'hotp') return reject(`unknown token type${shown(at('type'))} (expected totp or hotp)`)

  const lengthText = at('otplen')
  let digits: 6 | 8
  if (lengthText === '' || lengthText === '6') digits = 6
  else if (lengthText === '8') digits = 8
  else return reject(`unknown OTP length${shown(lengthText)} (expected 6 or 8)`)

  const stepText = at('timestep')
  const spec = readStepColumn(stepText, kind)
  if (spec === null) {
    return reject(kind === 'totp'
      ? `unknown time step${shown(stepText)} (expected 30 or 60, a hash algorithm sha1, sha256 or sha512, or both like 30:sha256)`
      : `unknown hash algorithm${shown(stepText)} (expected sha1, sha256 or sha512)`)
  }

  const token: ImportedToken = {
    line,
    serial,
    kind,
    algorithm: spec.algorithm,
    digits,
    period: spec.period,
    counter: kind === 'hotp' ? 0 : null,
    seed: Buffer.from(key, 'hex'),
    upn,
    manufacturer: null,
    model: null,
  }
  return { ok: true, token }
}

/** The timestep column: "", "30", "sha256" or "30:sha256". For HOTP any whole number stands for the (unused) step. */
function readStepColumn(text: string, kind: 'totp' | 'hotp'): { period: number | null; algorithm: OtpAlgorithm } | null {
  const m = STEP_COLUMN.exec(text)
  if (!m) return null
  const step = m[1] === undefined ? null : Number(m[1])
  if (kind === 'totp' && step !== null && step !== 30 && step !== 60) return null
  return { period: kind === 'totp' ? (step ?? 30) : null, algorithm: ALGORITHMS[(m[2] ?? m[3] ?? 'sha1').toLowerCase()]! }
}
