import { parse } from 'csv-parse/sync'
import t from 'tap'
import { csvLines, plainFields, quotingProblem } from '../../src/import/csv-lines.js'
import { LineSplitter, physicalLines } from '../../src/import/lines.js'

function splitAll(pieces: string[], max?: number) {
  const splitter = new LineSplitter(max)
  return [...pieces.flatMap((p) => splitter.push(p)), ...splitter.end()].map((l) => (l.tooLong ? [l.line, null] : [l.line, l.text]))
}

t.test('lines end at LF, CRLF or a lone CR, wherever the pieces are cut', async (t) => {
  const text = 'a\r\nb\rc\n\nd\r\r\ne'
  const expected = [[1, 'a'], [2, 'b'], [3, 'c'], [4, ''], [5, 'd'], [6, ''], [7, 'e']]
  for (let size = 1; size <= text.length; size++) {
    const pieces: string[] = []
    for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size))
    t.same(splitAll(pieces), expected, `pieces of ${size}`)
  }
  t.same(splitAll(['a\n']), [[1, 'a']], 'a final line break does not start another line')
  t.same(splitAll(['a\r']), [[1, 'a']])
  t.same(splitAll([]), [])
})

t.test('a line over the limit comes out as too long, without its text, and the next line is whole', async (t) => {
  t.same(splitAll(['12345\n123456\n1234', '56', '7\r', '\nok'], 5), [[1, '12345'], [2, null], [3, null], [4, 'ok']])
  t.same(splitAll(['x'.repeat(20)], 5), [[1, null]])
})

t.test('bytes are decoded as UTF-8 even when a character is cut between chunks, and the BOM is dropped', async (t) => {
  const bytes = Buffer.from('\uFEFFÄrger,ü\n€,😀\n')
  async function* oneByteAtATime() {
    for (const b of bytes) yield Buffer.from([b])
  }
  const lines = []
  for await (const batch of physicalLines(oneByteAtATime())) lines.push(...batch.map((l) => l.text))
  t.same(lines, ['Ärger,ü', '€,😀'])
})

function fuzz(alphabet: string[], count: number, seed: number): string[] {
  let state = seed
  const random = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state % n
  }
  const lines: string[] = []
  for (let k = 0; k < count; k++) {
    let line = ''
    const length = 1 + random(10)
    for (let i = 0; i < length; i++) line += alphabet[random(alphabet.length)]
    if (line.trim() !== '') lines.push(line) // blank lines never reach the parser
  }
  return lines
}

function csvParseReads(line: string): boolean {
  try {
    const records = parse(line + '\n', { delimiter: ',', record_delimiter: '\n', trim: true, relax_column_count: true, bom: false })
    return records.length === 1
  } catch {
    return false
  }
}

t.test('quotingProblem agrees with csv-parse on which single lines it can read', async (t) => {
  // Random short lines over the characters that matter; csv-parse is the judge.
  const lines = fuzz(['a', 'b', ',', ',', '"', '"', ' ', '\t'], 30_000, 12345)
  const disagree = lines.filter((line) => (quotingProblem(line) === null) !== csvParseReads(line))
  t.same(disagree.slice(0, 5), [], `${lines.length} lines checked, ${disagree.length} disagreements`)
})

t.test('with other Unicode spaces, every line quotingProblem lets through is one csv-parse can read', async (t) => {
  const lines = fuzz(['a', ',', '"', '"', ' ', '\u3000', '\u00a0', '\u2028', '\ufeff'], 30_000, 54321)
  const unsafe = lines.filter((line) => quotingProblem(line) === null && !csvParseReads(line))
  t.same(unsafe.slice(0, 5), [], `${lines.length} lines checked`)
})

t.test('a line without quotes is split into the fields csv-parse would return', async (t) => {
  // Every whitespace character either trims (space, tab, NBSP, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
  // U+205F, U+3000, U+FEFF) plus some that do not (U+200B, U+180E) and a multi-byte letter.
  const alphabet = ['a', 'é', ',', ',', ' ', '\t', '\f', '\v', '\u00a0', '\u1680', '\u2000', '\u200a', '\u2028', '\u2029',
    '\u202f', '\u205f', '\u3000', '\ufeff', '\u200b', '\u180e', '😀']
  const lines = fuzz(alphabet, 30_000, 777)
  const differ = lines.filter((line) => {
    const records = parse(line + '\n', { delimiter: ',', record_delimiter: '\n', trim: true, relax_column_count: true, bom: false })
    return JSON.stringify(records[0]) !== JSON.stringify(plainFields(line))
  })
  t.same(differ.slice(0, 5), [], `${lines.length} lines checked, ${differ.length} differ`)
  t.equal(plainFields('a,\ud800'), null, 'a lone surrogate goes to the parser, which reads it as U+FFFD')
})

t.test('plain and quoted lines come out in file order, however the batches mix them', async (t) => {
  async function* batches() {
    yield [{ line: 1, text: '"a",b', tooLong: false }, { line: 2, text: ' c , d ', tooLong: false }]
    yield [{ line: 3, text: 'e,\ud800', tooLong: false }, { line: 4, text: 'f', tooLong: false }, { line: 5, text: '"g"', tooLong: false }]
  }
  const rows = []
  for await (const batch of csvLines(batches(), { quotes: true })) rows.push(...batch)
  t.same(rows, [
    { line: 1, fields: ['a', 'b'] },
    { line: 2, fields: ['c', 'd'] },
    { line: 3, fields: ['e', '\ufffd'] },
    { line: 4, fields: ['f'] },
    { line: 5, fields: ['g'] },
  ])
})

t.test('the problem wording for each kind of quoting mistake', async (t) => {
  t.equal(quotingProblem('a,"b'), 'a quoted field is not closed on this line')
  t.equal(quotingProblem('a,"b"c'), 'text follows a closing quote (quotes must enclose a whole field)')
  t.equal(quotingProblem('a,b"c"'), 'a quote inside a field that does not start with one (quotes must enclose a whole field)')
  t.equal(quotingProblem(' "a, ""b""" , c'), null)
  t.equal(quotingProblem('plain,line'), null)
})

t.test('a line csv-parse cannot read is reported on its own line and the next lines are still read', async (t) => {
  async function* batches() {
    yield [
      { line: 1, text: 'a,b', tooLong: false },
      { line: 2, text: 'c,"d', tooLong: false },
      { line: 3, text: '   ', tooLong: false },
    ]
    yield [
      { line: 4, text: '"e,1",f', tooLong: false },
      { line: 5, text: '', tooLong: true },
      { line: 6, text: 'g', tooLong: false },
    ]
  }
  const rows = []
  for await (const batch of csvLines(batches(), { quotes: true })) rows.push(...batch)
  t.same(rows, [
    { line: 1, fields: ['a', 'b'] },
    { line: 2, problem: 'a quoted field is not closed on this line' },
    { line: 4, fields: ['e,1', 'f'] },
    { line: 5, problem: 'the line is longer than 65536 characters' },
    { line: 6, fields: ['g'] },
  ])
})

t.test('without quoting a quote is an ordinary character', async (t) => {
  async function* batches() {
    yield [{ line: 1, text: ' "a , b"c ', tooLong: false }]
  }
  const rows = []
  for await (const batch of csvLines(batches(), { quotes: false })) rows.push(...batch)
  t.same(rows, [{ line: 1, fields: ['"a', 'b"c'] }])
})
