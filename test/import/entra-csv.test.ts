import { createReadStream } from 'node:fs'
import v8 from 'node:v8'
import vm from 'node:vm'
import t from 'tap'
import { parseEntraCsv } from '../../src/import/entra-csv.js'
import { UnusableFile, type ImportedToken, type ParsedRow, type RejectedRow } from '../../src/import/types.js'

const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model'
const fixture = (name: string) => createReadStream(new URL(`../fixtures/import/${name}`, import.meta.url))

async function* pieces(text: string, size = 7): AsyncGenerator<Buffer> {
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

const parseText = (text: string) => collect(parseEntraCsv(pieces(text)))

/** Base32 decoded through a string of bits: a second, independent decoder for checking seeds. */
function base32ByBits(key: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const bits = [...key.toUpperCase()].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('')
  const bytes: number[] = []
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2))
  return Buffer.from(bytes)
}

t.test("Microsoft's example row reads as Helga's 60-second TOTP token with the decoded seed", async (t) => {
  const { tokens, rejected } = await collect(parseEntraCsv(fixture('entra-sample.csv')))
  t.same(rejected, [])
  const helga = tokens[0]!
  t.match(helga, {
    line: 2,
    serial: '1234567',
    kind: 'totp',
    algorithm: 'SHA1',
    digits: 6,
    period: 60,
    counter: null,
    upn: 'Helga@contoso.onmicrosoft.com',
    manufacturer: 'Contoso',
    model: 'HardwareKey',
  })
  // 2 2 3 4 5 6 7 A B C D E F = 26 26 27 28 29 30 31 0 1 2 3 4 5, twice: 130 bits, 16 whole bytes, worked out by hand.
  t.equal(helga.seed.toString('hex'), 'd6b7cefbe0088642eb5be77df0044321')
  t.same(helga.seed, base32ByBits('2234567abcdef2234567abcdef'))
})

t.test('a BOM, CRLF line ends, a blank line, quoted fields, spaces and padding in the key are all accepted', async (t) => {
  const { tokens } = await collect(parseEntraCsv(fixture('entra-sample.csv')))
  t.same(tokens.map((k) => [k.line, k.serial]), [[2, '1234567'], [4, 'SN-0002'], [5, 'SN_0003']])
  t.match(tokens[1], { upn: null, manufacturer: 'Contoso, Inc.', model: null, period: 30 })
  // The well-known test key JBSWY3DPEHPK3PXP is "Hello!" followed by DE AD BE EF.
  t.same(tokens[1]!.seed, Buffer.concat([Buffer.from('Hello!'), Buffer.from([0xde, 0xad, 0xbe, 0xef])]))
  t.same(tokens[2]!.seed, base32ByBits('JBSWY3DPEHPK3PXP'), 'lower case and = padding')
})

t.test('each bad row is refused with its line, its serial and the reason, and the good rows still come through', async (t) => {
  const { tokens, rejected } = await collect(parseEntraCsv(fixture('entra-bad-rows.csv')))
  t.same(tokens.map((k) => [k.line, k.serial]), [[2, 'GOOD-1'], [12, 'GOOD-2']])
  t.same(rejected, [
    { line: 3, serial: 'BAD-BASE32', reason: 'secret key is not Base32 (letters A-Z and digits 2-7)' },
    { line: 4, serial: 'TOO-SHORT', reason: 'secret key is too short: 8 bytes, at least 10 are needed' },
    { line: 5, serial: 'BAD-INTERVAL', reason: 'unknown time interval "45" (expected 30 or 60)' },
    { line: 6, serial: 'BAD-UPN', reason: 'upn is not a user principal name like name@example.com' },
    { line: 7, serial: null, reason: 'serial is missing' },
    { line: 8, serial: 'WRONG-COLUMNS', reason: 'expected 6 columns (upn, serial number, secret key, time interval, manufacturer, model) but found 4' },
    { line: 9, serial: 'GOOD-1', reason: 'duplicate serial in the file (first on line 2)' },
    { line: 10, serial: null, reason: 'a quoted field is not closed on this line' },
  ])
})

t.test('a row with an unknown time interval is rejected with its line and serial', async (t) => {
  const { rejected } = await parseText(`${HEADER}\n,T1,JBSWY3DPEHPK3PXP,90,,\n,T2,JBSWY3DPEHPK3PXP,,,\n`)
  t.same(rejected, [
    { line: 2, serial: 'T1', reason: 'unknown time interval "90" (expected 30 or 60)' },
    { line: 3, serial: 'T2', reason: 'unknown time interval (expected 30 or 60)' },
  ])
})

t.test('the other field rules: serial characters and length, key length, label length, too many columns', async (t) => {
  const long = 'x'.repeat(101)
  const { rejected } = await parseText([
    HEADER,
    ',has space,JBSWY3DPEHPK3PXP,30,,',
    `,${'S'.repeat(65)},JBSWY3DPEHPK3PXP,30,,`,
    `,K1,${'A'.repeat(129)},30,,`,
    ',K2,,30,,',
    `,K3,JBSWY3DPEHPK3PXP,30,${long},`,
    `,K4,JBSWY3DPEHPK3PXP,30,,${long}`,
    ',K5,JBSWY3DPEHPK3PXP,30,,,extra',
    ',K6,"JBSWY3DP"EHPK3PXP,30,,',
  ].join('\n'))
  t.same(rejected, [
    { line: 2, serial: null, reason: "serial must be 1 to 64 letters, digits, '-', '_' or '.'" },
    { line: 3, serial: null, reason: "serial must be 1 to 64 letters, digits, '-', '_' or '.'" },
    { line: 4, serial: 'K1', reason: 'secret key is longer than 128 characters' },
    { line: 5, serial: 'K2', reason: 'secret key is missing' },
    { line: 6, serial: 'K3', reason: 'manufacturer is longer than 100 characters' },
    { line: 7, serial: 'K4', reason: 'model is longer than 100 characters' },
    { line: 8, serial: 'K5', reason: 'expected 6 columns (upn, serial number, secret key, time interval, manufacturer, model) but found 7' },
    { line: 9, serial: null, reason: 'text follows a closing quote (quotes must enclose a whole field)' },
  ])
})

t.test('the 128-character key limit and the 10-byte seed minimum are inclusive', async (t) => {
  const { tokens } = await parseText(`${HEADER}\n,MAX,${'A'.repeat(128)},30,,\n,MIN,${'B'.repeat(16)},30,,\n`)
  t.same(tokens.map((k) => [k.serial, k.seed.length]), [['MAX', 80], ['MIN', 10]])
})

t.test('line numbers count blank lines, CR, LF and CRLF line ends, even when a CRLF is split between chunks', async (t) => {
  const text = `${HEADER}\r\n\r\n,A,JBSWY3DPEHPK3PXP,30,,\r,B,JBSWY3DPEHPK3PXP,30,,\n\n   \n,C,JBSWY3DPEHPK3PXP,30,,`
  for (const size of [1, 2, 3, 64, 1000]) {
    const { tokens } = await collect(parseEntraCsv(pieces(text, size)))
    t.same(tokens.map((k) => [k.line, k.serial]), [[3, 'A'], [4, 'B'], [7, 'C']], `chunks of ${size} bytes`)
  }
})

t.test('string chunks and a BOM in a string are read like bytes', async (t) => {
  async function* strings() {
    yield `\uFEFF${HEADER.toUpperCase()}\n`
    yield ',S1,JBSWY3DPEH'
    yield 'PK3PXP,30,,\n'
  }
  const { tokens } = await collect(parseEntraCsv(strings()))
  t.same(tokens.map((k) => k.serial), ['S1'])
})

t.test('the header is matched without regard to case and spaces, and may be quoted', async (t) => {
  const { tokens } = await parseText(' UPN , "Serial Number",Secret Key,TIME INTERVAL,Manufacturer ,Model\n,S1,JBSWY3DPEHPK3PXP,30,,\n')
  t.equal(tokens.length, 1)
})

t.test('a wrong, missing or blank-first header makes the whole file unusable, naming the expected header', async (t) => {
  const expected = /must start with the header line "upn,serial number,secret key,time interval,manufacturer,model"/
  for (const text of [
    'serial,key\n1,2\n',
    'upn,serial number,secret key,time interval,manufacturer\n',
    'upn;serial number;secret key;time interval;manufacturer;model\n',
    '\nupn,serial number,secret key,time interval,manufacturer,model\n',
    '',
    '\n\n',
  ]) {
    await t.rejects(parseText(text), expected, JSON.stringify(text))
    await t.rejects(parseText(text), UnusableFile)
  }
})

t.test('a binary file is unusable', async (t) => {
  async function* png() {
    yield Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52])
    yield Buffer.alloc(200_000, 0xab) // no line break at all
  }
  await t.rejects(collect(parseEntraCsv(png())), UnusableFile)
  async function* utf16() {
    yield Buffer.from(`\uFEFF${HEADER}\r\n`, 'utf16le')
  }
  await t.rejects(collect(parseEntraCsv(utf16())), { name: 'UnusableFile', message: /UTF-16/ })
})

t.test('a header without data rows yields nothing', async (t) => {
  t.same(await parseText(`${HEADER}\n`), { tokens: [], rejected: [] })
  t.same(await parseText(`${HEADER}\n\n\n`), { tokens: [], rejected: [] })
  t.same(await parseText(HEADER), { tokens: [], rejected: [] })
})

t.test('a line too long to be a token is refused and the next line is read', async (t) => {
  const { tokens, rejected } = await parseText(`${HEADER}\n,L,${'A'.repeat(70_000)},30,,\n,OK,JBSWY3DPEHPK3PXP,30,,\n`)
  t.same(rejected, [{ line: 2, serial: null, reason: 'the line is longer than 65536 characters' }])
  t.same(tokens.map((k) => [k.line, k.serial]), [[3, 'OK']])
})

t.test('no reason or error ever contains the secret key', async (t) => {
  const secret = 'JBSWY3DPEHPK3PX1QRSTUVWX'
  const { rejected } = await parseText([
    HEADER,
    `,BAD,${secret},30,,`,
    `,SHORT,${secret.slice(0, 12)},30,,`,
    `,INTERVAL,JBSWY3DPEHPK3PXP,${secret},,`,
    `${secret},UPN,JBSWY3DPEHPK3PXP,30,,`,
    `,${secret}${secret}${secret},JBSWY3DPEHPK3PXP,30,,`,
    `,QUOTE,"${secret}"x,30,,`,
    `,COLUMNS,${secret},30`,
  ].join('\n'))
  t.equal(rejected.length, 7)
  t.equal(rejected[0]!.reason, 'secret key is not Base32 (letters A-Z and digits 2-7)')
  for (const r of rejected) {
    t.notOk(r.reason.includes(secret.slice(0, 12)), `line ${r.line}: ${r.reason}`)
    t.notOk(String(r.serial).includes(secret.slice(0, 12)), `line ${r.line} serial`)
  }
  // A file without its header starts with a token: the error must not repeat that line.
  const err = await parseText(`,BAD,${secret},30,,\n`).then(() => null, (e: unknown) => e as Error)
  t.type(err, UnusableFile)
  t.notOk(err!.message.includes(secret.slice(0, 12)))
  t.notOk(String(err!.stack).includes(secret.slice(0, 12)))
})

t.test('rows are read while the file streams in, not after it has all been read', async (t) => {
  let pulled = 0
  async function* lazy() {
    yield Buffer.from(`${HEADER}\n`)
    for (let c = 0; c < 200; c++) {
      pulled++
      let text = ''
      for (let i = 0; i < 1000; i++) text += `,S${c}-${i},JBSWY3DPEHPK3PXP,30,,\n`
      yield Buffer.from(text)
    }
  }
  const rows = parseEntraCsv(lazy())
  const first = await rows.next()
  t.equal(first.done, false)
  t.ok(pulled < 40, `${pulled} of 200 chunks read before the first row`)
  await rows.return(undefined)
  t.ok(pulled < 40, 'stopping early stops reading')
})

t.test('200,000 generated lines stream through in flat memory', async (t) => {
  // A real collection, so that what is measured is memory held, not garbage not yet swept.
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const LINES = 200_000
  async function* generated() {
    yield Buffer.from(`\uFEFF${HEADER}\r\n`)
    const per = 500
    for (let start = 0; start < LINES; start += per) {
      let text = ''
      for (let i = start; i < start + per; i++) {
        text += `user${i}@contoso.onmicrosoft.com,SN${String(i).padStart(8, '0')},JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP,${i % 2 ? 30 : 60},Contoso,HardwareKey\r\n`
      }
      yield Buffer.from(text)
    }
  }
  gc()
  const before = process.memoryUsage()
  let peakRss = 0
  let peakHeap = 0
  let gcTime = 0
  const sample = () => {
    const start = performance.now()
    gc()
    gcTime += performance.now() - start
    const now = process.memoryUsage()
    peakRss = Math.max(peakRss, now.rss - before.rss)
    peakHeap = Math.max(peakHeap, now.heapUsed - before.heapUsed)
  }
  let count = 0
  let bad = 0
  const started = performance.now()
  for await (const row of parseEntraCsv(generated())) {
    if (row.ok) count++
    else bad++
    if ((count + bad) % 25_000 === 0) sample()
  }
  const seconds = (performance.now() - started - gcTime) / 1000
  const mb = (n: number) => (n / 2 ** 20).toFixed(1)
  t.equal(count, LINES)
  t.equal(bad, 0)
  t.comment(`${LINES} lines in ${seconds.toFixed(2)} s: ${Math.round(LINES / seconds)} lines/s; ` +
    `growth at most: rss ${mb(peakRss)} MB, heap ${mb(peakHeap)} MB (the heap part is mostly the serials kept for duplicates)`)
  t.ok(peakRss < 100 * 2 ** 20, `rss grew ${mb(peakRss)} MB`)
  t.ok(peakHeap < 100 * 2 ** 20, `heap grew ${mb(peakHeap)} MB`)
})
