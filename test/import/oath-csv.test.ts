import { createHmac } from 'node:crypto'
import { createReadStream } from 'node:fs'
import t from 'tap'
import { parseOathCsv } from '../../src/import/oath-csv.js'
import { UnusableFile, type ImportedToken, type ParsedRow, type RejectedRow } from '../../src/import/types.js'

const fixture = (name: string) => createReadStream(new URL(`../fixtures/import/${name}`, import.meta.url))

async function* pieces(text: string, size = 5): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text)
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
}

async function collect(rows: AsyncIterable<ParsedRow>): Promise<{ tokens: ImportedToken[]; rejected: RejectedRow[] }> {
  const tokens: ImportedToken[] = []
  const rejected: RejectedRow[] = []
  for await (const row of rows) {
    if (row.ok) tokens.push(row.token)
    else rejected.push(row.rejected)
  }
  return { tokens, rejected }
}

const parseText = (text: string) => collect(parseOathCsv(pieces(text)))

/** RFC 4226 truncation, written out here so that the test does not lean on the code under test. */
function otp(seed: Buffer, algorithm: string, counter: number, digits: number): string {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac(algorithm, seed).update(message).digest()
  const offset = mac[mac.length - 1]! & 0x0f
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits
  return String(code).padStart(digits, '0')
}

// RFC 6238's test seeds: "1234567890" repeated, 20 bytes for SHA-1 and 32 for SHA-256.
const SEED20 = Buffer.from('12345678901234567890')
const SEED32 = Buffer.from('12345678901234567890123456789012')

t.test('version 1 gives a 6- and an 8-digit SHA-256 TOTP token, an HOTP token and a 60-second TOTP token', async (t) => {
  const { tokens, rejected } = await collect(parseOathCsv(fixture('oath-v1.csv')))
  t.same(rejected, [])
  t.same(tokens, [
    { line: 2, serial: 'OATH-T6', kind: 'totp', algorithm: 'SHA256', digits: 6, period: 30, counter: null, seed: SEED32, upn: null, manufacturer: null, model: null },
    { line: 3, serial: 'OATH-T8', kind: 'totp', algorithm: 'SHA256', digits: 8, period: 30, counter: null, seed: SEED32, upn: null, manufacturer: null, model: null },
    { line: 5, serial: 'OATH-H1', kind: 'hotp', algorithm: 'SHA1', digits: 6, period: null, counter: 0, seed: SEED20, upn: null, manufacturer: null, model: null },
    { line: 6, serial: 'OATH-T60', kind: 'totp', algorithm: 'SHA1', digits: 6, period: 60, counter: null, seed: SEED20, upn: null, manufacturer: null, model: null },
  ])
  // RFC 6238 appendix B at T = 59 s (step 1) and RFC 4226 appendix D (counter 0).
  t.equal(otp(tokens[1]!.seed, 'sha256', Math.floor(59 / tokens[1]!.period!), tokens[1]!.digits), '46119246')
  t.equal(otp(tokens[2]!.seed, 'sha1', tokens[2]!.counter!, tokens[2]!.digits), '755224')
})

t.test('version 2 puts the user first and makes the upn from user and realm', async (t) => {
  const { tokens, rejected } = await collect(parseOathCsv(fixture('oath-v2.csv')))
  t.same(rejected, [])
  t.same(tokens.map((k) => [k.line, k.serial, k.upn, k.kind, k.algorithm, k.digits, k.period, k.counter]), [
    [3, 'OATH-T6', 'helga@contoso.com', 'totp', 'SHA256', 6, 30, null],
    [4, 'OATH-T8', 'bob@contoso.com', 'totp', 'SHA256', 8, 30, null],
    [5, 'OATH-H1', null, 'hotp', 'SHA1', 6, null, 0],
  ])
  t.same(tokens[0]!.seed, SEED32)
  t.same(tokens[2]!.seed, SEED20)
})

t.test('the defaults are HOTP, 6 digits, 30 seconds and SHA-1, as in privacyIDEA', async (t) => {
  const key = SEED20.toString('hex')
  const { tokens } = await parseText(`A, ${key}\nB, ${key}, totp\nC, ${key}, TOTP, 8\nD, ${key}, hotp, 8, 30\nE, ${key}, hotp, 6, 17:sha512\n`)
  t.same(tokens.map((k) => [k.serial, k.kind, k.digits, k.period, k.counter, k.algorithm]), [
    ['A', 'hotp', 6, null, 0, 'SHA1'],
    ['B', 'totp', 6, 30, null, 'SHA1'],
    ['C', 'totp', 8, 30, null, 'SHA1'],
    ['D', 'hotp', 8, null, 0, 'SHA1'],
    ['E', 'hotp', 6, null, 0, 'SHA512'],
  ])
})

t.test('the timestep column takes a step, a hash algorithm or both', async (t) => {
  const key = SEED32.toString('hex')
  const { tokens, rejected } = await parseText([
    `S1,${key},totp,6,60`,
    `S2,${key},totp,6,SHA512`,
    `S3,${key},totp,6,60:sha256`,
    `S4,${key},totp,6, 60 : sha1 `,
    `S5,${key},totp,6,`,
    `S6,${key},totp,6,sha256:60`,
    `S7,${key},totp,6,md5`,
  ].join('\n'))
  t.same(tokens.map((k) => [k.serial, k.period, k.algorithm]), [
    ['S1', 60, 'SHA1'], ['S2', 30, 'SHA512'], ['S3', 60, 'SHA256'], ['S4', 60, 'SHA1'], ['S5', 30, 'SHA1'],
  ])
  const why = 'unknown time step%s (expected 30 or 60, a hash algorithm sha1, sha256 or sha512, or both like 30:sha256)'
  t.same(rejected, [
    { line: 6, serial: 'S6', reason: why.replace('%s', ' "sha256:60"') },
    { line: 7, serial: 'S7', reason: why.replace('%s', ' "md5"') },
  ])
})

t.test('each bad row is refused with its line, its serial and the reason', async (t) => {
  const key = SEED20.toString('hex')
  const { tokens, rejected } = await parseText([
    `GOOD, ${key}, totp`,
    `HEXLESS, ${key.slice(0, -2)}zz, totp`,
    `ODD, ${key}0, totp`,
    `SHORT, ${key.slice(0, 18)}, totp`,
    `LONG, ${'ab'.repeat(129)}, totp`,
    `NOKEY, , totp`,
    `TYPE, ${key}, ocra`,
    `LENGTH, ${key}, totp, 7`,
    `STEP, ${key}, totp, 6, 45`,
    `HSTEP, ${key}, hotp, 6, fast`,
    `, ${key}, totp`,
    `bad serial, ${key}, totp`,
    `GOOD, ${key}, hotp`,
    `ONLYSERIAL`,
    `MANY, ${key}, totp, 6, 30, sha1`,
    `TRAILING, ${key}, totp, 6, 30, , `,
  ].join('\n'))
  t.same(tokens.map((k) => [k.line, k.serial]), [[1, 'GOOD'], [16, 'TRAILING']])
  t.same(rejected, [
    { line: 2, serial: 'HEXLESS', reason: 'key is not hexadecimal (digits 0-9 and letters a-f)' },
    { line: 3, serial: 'ODD', reason: 'key has an odd number of hex digits' },
    { line: 4, serial: 'SHORT', reason: 'key is too short: 9 bytes, at least 10 are needed' },
    { line: 5, serial: 'LONG', reason: 'key is too long: 129 bytes, at most 128 are allowed' },
    { line: 6, serial: 'NOKEY', reason: 'key is missing' },
    { line: 7, serial: 'TYPE', reason: 'unknown token type "ocra" (expected totp or hotp)' },
    { line: 8, serial: 'LENGTH', reason: 'unknown OTP length "7" (expected 6 or 8)' },
    { line: 9, serial: 'STEP', reason: 'unknown time step "45" (expected 30 or 60, a hash algorithm sha1, sha256 or sha512, or both like 30:sha256)' },
    { line: 10, serial: 'HSTEP', reason: 'unknown hash algorithm "fast" (expected sha1, sha256 or sha512)' },
    { line: 11, serial: null, reason: 'serial is missing' },
    { line: 12, serial: null, reason: "serial must be 1 to 64 letters, digits, '-', '_' or '.'" },
    { line: 13, serial: 'GOOD', reason: 'duplicate serial in the file (first on line 1)' },
    { line: 14, serial: 'ONLYSERIAL', reason: 'expected at least 2 columns (serial, key) but found 1' },
    { line: 15, serial: 'MANY', reason: 'expected at most 5 columns (serial, key, type, otplen, timestep) but found 6' },
  ])
})

t.test('version 2 users need a domain, in the name or in the realm column', async (t) => {
  const key = SEED20.toString('hex')
  const { tokens, rejected } = await parseText([
    '# version: 2',
    `helga, ldap, , U1, ${key}, totp`,
    `helga@, , , U2, ${key}, totp`,
    `he lga, , contoso.com, U3, ${key}, totp`,
    `helga, , contoso.com, U4, ${key}, totp`,
    `, , , U5`,
    `U6, ${key}, totp`,
  ].join('\n'))
  t.same(tokens.map((k) => [k.serial, k.upn]), [['U4', 'helga@contoso.com']])
  t.same(rejected, [
    { line: 2, serial: 'U1', reason: 'user has no domain: write it as name@domain or fill in the user realm column' },
    { line: 3, serial: 'U2', reason: 'user is not a user principal name like name@example.com' },
    { line: 4, serial: 'U3', reason: 'user is not a user principal name like name@example.com' },
    { line: 6, serial: 'U5', reason: 'expected at least 5 columns (user, user resolver, user realm, serial, key) but found 4' },
    { line: 7, serial: null, reason: 'expected at least 5 columns (user, user resolver, user realm, serial, key) but found 3' },
  ])
})

t.test('comments, blank lines and quotes: comments and blanks are skipped, quotes are plain text', async (t) => {
  const key = SEED20.toString('hex')
  const { tokens, rejected } = await parseText(`# a comment\n\n   # indented comment\r\n"Q1", ${key}, totp\r\nC1, ${key}, totp # not a comment\n`)
  t.same(tokens, [])
  t.same(rejected, [
    { line: 4, serial: null, reason: "serial must be 1 to 64 letters, digits, '-', '_' or '.'" },
    { line: 5, serial: 'C1', reason: 'unknown token type (expected totp or hotp)' },
  ])
})

t.test('a version line other than 1 or 2 makes the file unusable; "# version: 1" is version 1', async (t) => {
  const key = SEED20.toString('hex')
  await t.rejects(parseText(`# version: 3\nA, ${key}\n`), new UnusableFile('unknown OATH CSV version 3 on line 1: versions 1 and 2 are known'))
  const { tokens } = await parseText(`#version:1\nA, ${key}\n`)
  t.same(tokens.map((k) => [k.line, k.serial]), [[2, 'A']])
  // Only the first line can choose the version.
  const later = await parseText(`A, ${key}\n# version: 2\nB, ${key}\n`)
  t.same(later.tokens.map((k) => k.serial), ['A', 'B'])
})

t.test('an empty file or one with only comments yields nothing', async (t) => {
  t.same(await parseText(''), { tokens: [], rejected: [] })
  t.same(await parseText('# version: 2\n# nothing yet\n\n'), { tokens: [], rejected: [] })
})

t.test('no reason or error ever contains the key', async (t) => {
  const key = '0123456789abcdef0123456789abcdef'
  const { rejected } = await parseText([
    `A, ${key}z, totp`,
    `B, ${key}0, totp`,
    `C, ${key}, ${key}`,
    `D, ${key}, totp, ${key}`,
    `E, ${key}, totp, 6, ${key}`,
    `${key}${key}${key}, ${key}, totp`,
    `# version: 2`,
    `F, ${key}, totp, 6, 30, ${key}`,
  ].join('\n'))
  t.equal(rejected.length, 7)
  for (const r of rejected) {
    t.notOk(r.reason.includes(key.slice(0, 16)), `line ${r.line}: ${r.reason}`)
    t.notOk(String(r.serial).includes(key.slice(0, 16)), `line ${r.line} serial`)
  }
})
