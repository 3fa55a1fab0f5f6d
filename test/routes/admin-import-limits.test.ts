// An inventory too large, or full of bad lines: a file over the limit is refused before a row is written,
// however it is sent (a Content-Length, or chunked); a file of a hundred thousand bad lines gets a report of
// bounded size (the first rows one by one, then counts by reason), and the gateway stays up.
import { Readable } from 'node:stream'
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { MAX_REPORTED_ROWS } from '../../src/commands/import-tokens.js'
import { testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { seedOf } from '../helpers/seeds.js'

const { app, database } = await testApp(t, { TESSERA_IMPORT_MAX_MB: '1' })
const key = await createApiKey(app.commands, { name: 'import', role: 'admin' }, metadata())
const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model\n'
const rows = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `,${prefix}${i},${seedOf(`${prefix}${i}`).b32},30,Token2,C202\n`).join('')
const tokens = async () => Number((await sql<{ n: string }>`select count(*) as n from tokens`.execute(database.db)).rows[0]!.n)
const events = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
const upload = (payload: string | Readable, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload,
  headers: { authorization: `Bearer ${key.key}`, 'content-type': 'text/csv', ...headers } })

t.test('over the limit: 413 before anything is written, with or without a Content-Length', async (t) => {
  const big = HEADER + rows(25_000, 'BIG-') // about 1.3 MB of good rows
  t.ok(big.length > 1024 * 1024)
  const [tokensBefore, eventsBefore] = [await tokens(), await events()]
  const declared = await upload(big)
  t.equal(declared.statusCode, 413)
  t.match(declared.json(), { message: 'The file is larger than 1 MiB: nothing was imported. Split it and import each part.' })
  // Chunked: no length is known before the end; the first rows would have been imported long before it.
  const chunked = await upload(Readable.from((function* () { for (let i = 0; i < big.length; i += 16_384) yield Buffer.from(big.slice(i, i + 16_384)) })()))
  t.equal(chunked.statusCode, 413)
  t.match(chunked.json(), { message: /nothing was imported/ })
  t.equal(await tokens(), tokensBefore, 'no token')
  t.equal(await events(), eventsBefore, 'no event')
  const fits = await upload(HEADER + rows(100, 'FIT-'))
  t.equal(fits.statusCode, 200)
  t.match(fits.json(), { imported: 100, rejectedCount: 0 })
})

t.test('a hundred thousand bad lines: a bounded report, every one counted by reason', async (t) => {
  const bad = [HEADER]
  for (let i = 0; i < 20_000; i++) bad.push(`,BAD-${i},not base32!,30,Token2,C202\n`, `,BAD-${i}x,${seedOf('x').b32},45,Token2,C202\n`, ',,,,,\n', `nobody${i}@example.com,U-${i},${seedOf('u').b32},30,,\n`, `,FIT-1,${seedOf('FIT-1').b32},30,,\n`)
  const body = bad.join('')
  const res = await app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: Readable.from([body.slice(0, 500_000), body.slice(500_000)]),
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'text/csv' } })
  // Over the 1 MiB of this gateway: the limit answers first. A gateway with room reads it all:
  t.equal(res.statusCode, 413)
  const roomy = await testApp(t)
  const roomyKey = await createApiKey(roomy.app.commands, { name: 'import', role: 'admin' }, metadata())
  const heapBefore = process.memoryUsage().heapUsed
  const report = await roomy.app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: body,
    headers: { authorization: `Bearer ${roomyKey.key}`, 'content-type': 'text/csv' } })
  t.equal(report.statusCode, 200)
  const json = report.json()
  t.equal(json.imported, 1, 'FIT-1, once: every later line repeats its serial')
  t.equal(json.rejectedCount, 99_999)
  t.equal(json.rejected.length, MAX_REPORTED_ROWS, 'the first rows one by one')
  t.match(json.rejected[0], { line: 2, serial: 'BAD-0' })
  const byReason = json.rejectedByReason as Record<string, number>
  t.equal(Object.values(byReason).reduce((a, b) => a + b, 0), 99_999, 'every refused row counted')
  t.equal(byReason['unknown user'], 20_000, 'reasons that name a value are counted by their kind')
  t.ok(Object.keys(byReason).length <= 101)
  t.ok(report.body.length < 200_000, `a report of ${report.body.length} bytes`)
  t.ok(process.memoryUsage().heapUsed - heapBefore < 200 * 1024 * 1024, 'the heap did not follow the file')
  t.equal((await roomy.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the gateway is up')
})
