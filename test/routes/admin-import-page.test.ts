// The admin import page: an inventory file posted as a form (multipart), streamed into the same import
// as the CLI and the API, with the same report; the CSRF token is checked before the file is read.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { sql } from 'kysely'
import { testApp, text } from '../helpers/app.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { SEED_B32 } from '../fixtures/rfc-vectors.js'

const { app, database, clock } = await testApp(t)
clock.now = new Date(1_800_000_000 * 1000)
await addAdmin(app, clock)

function multipart(fields: [string, string][], file: { name: string; content: string } | null) {
  const boundary = '----tessera-test-boundary'
  const parts = fields.map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
  if (file) parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="inventory"; filename="${file.name}"\r\nContent-Type: text/csv\r\n\r\n${file.content}\r\n`)
  return { payload: `${parts.join('')}--${boundary}--\r\n`, type: `multipart/form-data; boundary=${boundary}` }
}

t.test('an admin imports a file from the page and reads the report; a form without its token imports nothing', async (t) => {
  const b = await signedInAdmin(app, clock)
  const form = await b.get('/admin/import')
  t.match(text(form.body), /Import tokens .* Format .* File/)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!
  const csv = ['upn,serial number,secret key,time interval,manufacturer,model', `,IMP-1,${SEED_B32},30,Token2,C202`, `,IMP-2,not-base32!,30,Token2,C202`].join('\n')
  const post = (fields: [string, string][], file: { name: string; content: string } | null) => {
    const body = multipart(fields, file)
    return app.inject({ method: 'POST', url: '/admin/import', payload: body.payload, headers: { 'content-type': body.type, cookie: b.cookieHeader(), accept: 'text/html' } })
  }
  const forged = await post([['format', 'entra']], { name: 'tokens.csv', content: csv })
  t.equal(forged.statusCode, 403)
  t.equal((await sql`select 1 from tokens where serial = 'IMP-1'`.execute(database.db)).rows.length, 0, 'nothing imported without the token')

  const res = await post([['_csrf', csrf], ['format', 'entra']], { name: 'tokens.csv', content: csv })
  t.equal(res.statusCode, 200)
  t.match(text(res.body), /tokens\.csv: imported 1 token, refused 1 row Line 3, serial IMP-2: /)
  t.equal((await sql`select 1 from tokens where serial = 'IMP-1'`.execute(database.db)).rows.length, 1)
  const none = await post([['_csrf', csrf], ['format', 'entra']], null)
  t.equal(none.statusCode, 400)
  t.match(text(none.body), /Choose a file to import\./)
  const wrongFormat = await post([['_csrf', csrf], ['format', 'pdf']], { name: 'x.csv', content: csv })
  t.equal(wrongFormat.statusCode, 400)
  t.match(text(wrongFormat.body), /Choose the file's format/)
})

t.test('a PSKC file from the page, its password in the form before the file', async (t) => {
  const b = await signedInAdmin(app, clock)
  const form = await b.get('/admin/import')
  t.match(text(form.body), /PSKC \(RFC 6030\) Encrypted PSKC only Pre-shared key \(hex\) Or the password/)
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!
  // RFC 6030's figure 7: PBKDF2 from the password 'qwerty'.
  const figure7 = await readFile(new URL('../fixtures/pskc/rfc6030-figure7.xml', import.meta.url), 'utf8')
  const post = (fields: [string, string][]) => {
    const body = multipart(fields, { name: 'tokens.pskcxml', content: figure7 })
    return app.inject({ method: 'POST', url: '/admin/import', payload: body.payload, headers: { 'content-type': body.type, cookie: b.cookieHeader(), accept: 'text/html' } })
  }
  const wrong = await post([['_csrf', csrf], ['format', 'pskc'], ['psk', ''], ['password', 'azerty']])
  t.match(text(wrong.body), /tokens\.pskcxml: imported 0 tokens, refused 1 row Line \d+, serial 987654321: wrong password or pre-shared key/)
  const both = await post([['_csrf', csrf], ['format', 'pskc'], ['psk', '12345678901234567890123456789012'], ['password', 'qwerty']])
  t.equal(both.statusCode, 400)
  t.match(text(both.body), /Give the pre-shared key or the password, not both\./)
  const right = await post([['_csrf', csrf], ['format', 'pskc'], ['psk', ''], ['password', 'qwerty']])
  t.match(text(right.body), /tokens\.pskcxml: imported 1 token, refused 0 rows/)
  t.same((await sql<{ kind: string; manufacturer: string }>`select kind, manufacturer from tokens where serial = '987654321'`.execute(database.db)).rows,
    [{ kind: 'hotp', manufacturer: 'TokenVendorAcme' }])
})
