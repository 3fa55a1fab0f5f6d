// Throwaway review probe (deleted after use).
import { createCipheriv, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import net from 'node:net'
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../src/commands/api-keys.js'
import { listenOnLoopback, testApp, text } from './helpers/app.js'
import { addAdmin, signedInAdmin } from './helpers/staff.js'
import { metadata } from './helpers/database.js'

const { app, database, clock, logs } = await testApp(t)
clock.now = new Date(1_800_000_000 * 1000)
await addAdmin(app, clock)
const key = await createApiKey(app.commands, { name: 'import', role: 'admin' }, metadata())
const tokens = async (like: string) => Number((await sql<{ n: string }>`select count(*) as n from tokens where serial like ${like}`.execute(database.db)).rows[0]!.n)
const H = '<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">'
const SEED = Buffer.from('12345678901234567890')
const plainKp = (s: string) => `<KeyPackage><DeviceInfo><SerialNo>${s}</SerialNo></DeviceInfo><Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data><Secret><PlainValue>${SEED.toString('base64')}</PlainValue></Secret></Data></Key></KeyPackage>\n`
const api = (payload: string | Buffer, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload,
  headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/pskc+xml', ...headers } })

function pbkdf2File(serial: string, passwordBytes: Buffer): string {
  const salt = randomBytes(8)
  const k = pbkdf2Sync(passwordBytes, salt, 1000, 16, 'sha1')
  const enc = (plain: Buffer) => { const iv = randomBytes(16); const c = createCipheriv('aes-128-cbc', k, iv); return Buffer.concat([iv, c.update(plain), c.final()]) }
  const macKey = randomBytes(20)
  const ct = enc(SEED)
  const mac = createHmac('sha1', macKey).update(ct).digest()
  return `<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#">
<EncryptionKey><xenc11:DerivedKey><xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"><pkcs5:PBKDF2-params><Salt><Specified>${salt.toString('base64')}</Specified></Salt><IterationCount>1000</IterationCount><KeyLength>16</KeyLength></pkcs5:PBKDF2-params></xenc11:KeyDerivationMethod></xenc11:DerivedKey></EncryptionKey>
<MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"><MACKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><xenc:CipherData><xenc:CipherValue>${enc(macKey).toString('base64')}</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>
<KeyPackage><DeviceInfo><SerialNo>${serial}</SerialNo></DeviceInfo><Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data><Secret><EncryptedValue><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><xenc:CipherData><xenc:CipherValue>${ct.toString('base64')}</xenc:CipherValue></xenc:CipherData></EncryptedValue><ValueMAC>${mac.toString('base64')}</ValueMAC></Secret></Data></Key></KeyPackage></KeyContainer>`
}

t.test('truncated file: half-imported, 400', async (t) => {
  let xml = H; for (let i = 0; i < 4500; i++) xml += plainKp(`TR-${i}`)
  const res = await api(xml) // no </KeyContainer>
  t.comment(`truncated: status ${res.statusCode} body ${res.body.slice(0, 200)}; tokens imported: ${await tokens('TR-%')}`)
  const res2 = await api(H + plainKp('TR2-1') + '</KeyContainer><trailing/>')
  t.comment(`trailing junk after good single key: status ${res2.statusCode} ${res2.body.slice(0, 150)}; imported ${await tokens('TR2-%')}`)
})

t.test('content types', async (t) => {
  for (const ct of ['Application/PSKC+XML', 'application/xml-dtd', 'text/xml; charset=utf-16', 'application/pskc+xml; charset=utf-8', 'application/xml+foo', 'text/xmlfoo']) {
    const res = await api(H + plainKp('CT-' + Math.random().toString(36).slice(2, 8)) + '</KeyContainer>', { 'content-type': ct })
    t.comment(`${ct}: ${res.statusCode} ${res.body.slice(0, 140)}`)
  }
  const r = await api(H + plainKp('CTX-1') + '</KeyContainer>', { 'x-pskc-key': '' })
  t.comment(`empty X-PSKC-Key: ${r.statusCode} ${r.body.slice(0, 140)}`)
  const r2 = await api(H + plainKp('CTX-2') + '</KeyContainer>', { 'x-pskc-key': 'ab'.repeat(17) })
  t.comment(`34-hex-digit X-PSKC-Key: ${r2.statusCode} ${r2.body.slice(0, 140)}`)
})

t.test('non-ASCII password in the header (UTF-8 bytes on the wire)', async (t) => {
  const base = await listenOnLoopback(app)
  const port = Number(new URL(base).port)
  const pw = 'Pässwörd€'
  const body = Buffer.from(pbkdf2File('UTF-1', Buffer.from(pw, 'utf8')))
  const head = Buffer.concat([Buffer.from(`POST /admin/api/tokens/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key.key}\r\nContent-Type: application/pskc+xml\r\nContent-Length: ${body.length}\r\nConnection: close\r\nX-PSKC-Password: `), Buffer.from(pw, 'utf8'), Buffer.from('\r\n\r\n')])
  const answer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => { s.write(Buffer.concat([head, body])) })
    let out = ''; s.on('data', (d) => { out += d.toString() }); s.on('end', () => resolve(out)); s.on('error', reject)
  })
  t.comment(`utf-8 password: ${answer.split('\r\n\r\n')[1]?.slice(0, 300)}`)
  const ascii = await api(pbkdf2File('ASC-1', Buffer.from('plain ascii')), { 'x-pskc-password': 'plain ascii' })
  t.comment(`ascii password: ${ascii.body.slice(0, 200)}`)
})

t.test('admin page: psk field after the file; both psk and password; error echoes', async (t) => {
  const b = await signedInAdmin(app, clock)
  const form = await b.get('/admin/import')
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!
  const boundary = '----probe'
  const part = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`
  const file = (content: string) => `--${boundary}\r\nContent-Disposition: form-data; name="inventory"; filename="t.xml"\r\nContent-Type: application/xml\r\n\r\n${content}\r\n`
  const post = (payload: string) => app.inject({ method: 'POST', url: '/admin/import', payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, cookie: b.cookieHeader(), accept: 'text/html' } })
  const pwFile = pbkdf2File('PG-1', Buffer.from('secretpw'))
  const after = await post(part('_csrf', csrf) + part('format', 'pskc') + file(pwFile) + part('password', 'secretpw') + `--${boundary}--\r\n`)
  t.comment(`password after file: ${after.statusCode} ${text(after.body).slice(0, 400)}`)
  const both = await post(part('_csrf', csrf) + part('format', 'pskc') + part('psk', '00'.repeat(16)) + part('password', 'secretpw') + file(pbkdf2File('PG-2', Buffer.from('secretpw'))) + `--${boundary}--\r\n`)
  t.comment(`psk and password both: ${both.statusCode} ${text(both.body).slice(0, 300)}`)
  const badpsk = await post(part('_csrf', csrf) + part('format', 'pskc') + part('psk', 'zz' + '00'.repeat(15)) + file(pwFile) + `--${boundary}--\r\n`)
  t.comment(`bad psk: echoes psk? ${badpsk.body.includes('zz' + '00'.repeat(15))}`)
  const many = await post(part('_csrf', csrf) + part('format', 'pskc') + part('a', '1') + part('b', '1') + part('c', '1') + part('password', 'secretpw') + part('d', '1') + file(pbkdf2File('PG-3', Buffer.from('secretpw'))) + `--${boundary}--\r\n`)
  t.comment(`7 fields: ${many.statusCode} ${text(many.body).slice(0, 300)}`)
  t.comment(`logs mention password? ${logs.join('\n').includes('secretpw')}`)
})

t.test('deep nesting blocks the event loop', async (t) => {
  const depth = 25_000
  const started = performance.now()
  let ticks = 0; let worst = 0; let last = performance.now()
  const iv = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; ticks++ }, 10)
  const res = await api(H + '<a>'.repeat(depth))
  clearInterval(iv)
  t.comment(`depth ${depth} (${3 * depth} bytes): ${res.statusCode} ${res.body.slice(0, 120)} in ${Math.round(performance.now() - started)} ms; longest event-loop stall ${Math.round(worst)} ms`)
})
