// PSKC (RFC 6030): the RFC's own figures with their expected results; encrypted files whose values were
// made by OpenSSL (enc, dgst -mac HMAC, kdf PBKDF2) and assembled into XML here; tampered, missing and
// wrong MACs, wrong passwords; DTDs, entity bombs and external entities refused; then the imported tokens
// activated with codes from oathtool, through the admin API and the CLI.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { activateToken } from '../../src/commands/tokens.js'
import { parseInventory, UnusableFile, type ParsedRow, type PskcSecret } from '../../src/import/index.js'
import { addUser, testApp } from '../helpers/app.js'
import { tessera } from '../helpers/cli.js'
import { metadata } from '../helpers/database.js'
import { TEST_DATA_DIR } from '../helpers/embedded-server.js'
import { hotpAt, totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/pskc/', import.meta.url))
const RFC_SEED = Buffer.from('12345678901234567890').toString('hex')

async function rows(xml: string | Buffer, secret: PskcSecret = {}, chunk = 97): Promise<ParsedRow[]> {
  const data = Buffer.from(xml)
  // In small pieces, as a stream arrives: no element may depend on arriving whole.
  const input = (async function* () { for (let i = 0; i < data.length; i += chunk) yield data.subarray(i, i + chunk) })()
  const out: ParsedRow[] = []
  for await (const row of parseInventory('pskc', input, secret)) out.push(row)
  return out
}
const figure = (n: number) => fs.readFile(path.join(FIXTURES, `rfc6030-figure${n}.xml`))
const summary = (r: ParsedRow) => r.ok
  ? { serial: r.token.serial, kind: r.token.kind, digits: r.token.digits, counter: r.token.counter, period: r.token.period, algorithm: r.token.algorithm, seed: r.token.seed.toString('hex') }
  : { serial: r.rejected.serial, reason: r.rejected.reason }

t.test("RFC 6030's figures, each with its expected result", async (t) => {
  t.same((await rows(await figure(2))).map(summary), [{ serial: null, reason: 'no serial number (DeviceInfo/SerialNo)' }], 'figure 2: a key without a device serial is refused')
  t.same((await rows(await figure(3))).map(summary), [{ serial: '987654321', reason: 'the user (UserId) is not a user principal name (name@domain)' }], 'figure 3: an LDAP name is not a user here')
  t.match((await rows(await figure(4))).map(summary), [{ serial: '987654321', reason: /no secret .*KeyReference/ }], 'figure 4: a key held elsewhere')
  t.same((await rows(await figure(5))).map(summary), [
    { serial: '987654321', kind: 'hotp', digits: 8, counter: 0, period: null, algorithm: 'SHA1', seed: RFC_SEED },
    { serial: '987654321', reason: 'duplicate serial in the file (first on line 5)' },
  ], 'figure 5: the OTP key; its PIN key on the same device is a repeated serial')
  const psk = Buffer.from('12345678901234567890123456789012', 'hex')
  t.same((await rows(await figure(6), { psk })).map(summary), [{ serial: '987654321', kind: 'hotp', digits: 8, counter: 0, period: null, algorithm: 'SHA1', seed: RFC_SEED }],
    'figure 6: AES-128-CBC with the pre-shared key, MAC checked')
  t.same((await rows(await figure(7), { password: 'qwerty' })).map(summary), [{ serial: '987654321', kind: 'hotp', digits: 8, counter: 0, period: null, algorithm: 'SHA1', seed: RFC_SEED }],
    'figure 7: PBKDF2 from the password')
  t.match((await rows(await figure(8))).map(summary), [{ serial: '987654321', reason: /RSA key \(RFC 6030 section 6\.3\) are not supported/ }], 'figure 8: RSA key transport, refused with its reason')
  t.same((await rows(await figure(9))).map(summary), [{ serial: '0755225266', kind: 'hotp', digits: 6, counter: 0, period: null, algorithm: 'SHA1', seed: RFC_SEED }],
    'figure 9: a signed file (its signature is not what guards the keys here)')
  t.same((await rows(await figure(10))).map((r) => summary(r).serial), ['654321', '123456', '9999999', '9999999'], 'figure 10: a bulk file')
  t.match((await rows(await figure(10))).at(-1), { ok: false, rejected: { reason: /duplicate serial/ } })
})

// --- Files made with OpenSSL ---------------------------------------------------------------------------

const openssl = (args: string[], input?: Buffer) => execFileSync('openssl', args, { input })
const aes128 = (key: Buffer, iv: Buffer, plain: Buffer) => Buffer.concat([iv, openssl(['enc', '-aes-128-cbc', '-K', key.toString('hex'), '-iv', iv.toString('hex')], plain)])
const hmac = (alg: 'sha1' | 'sha256', key: Buffer, data: Buffer) => openssl(['dgst', `-${alg}`, '-mac', 'HMAC', '-macopt', `hexkey:${key.toString('hex')}`, '-binary'], data)
const pbkdf2 = (password: string, salt: Buffer, iterations: number) =>
  Buffer.from(openssl(['kdf', '-keylen', '16', '-kdfopt', 'digest:SHA1', '-kdfopt', `pass:${password}`, '-kdfopt', `hexsalt:${salt.toString('hex')}`, '-kdfopt', `iter:${iterations}`, 'PBKDF2']).toString().trim().replace(/:/g, ''), 'hex')

interface Spec { serial: string; kind: 'totp' | 'hotp'; user?: string; mac?: 'good' | 'tampered' | 'missing'; suite?: string; digits?: number; interval?: number }

function containerXml(keys: Spec[], protection: { psk: Buffer } | { password: string; salt: Buffer; iterations: number } | null, macAlg: 'sha1' | 'sha256' = 'sha1'): string {
  const encryption = protection ? ('psk' in protection ? protection.psk : pbkdf2(protection.password, protection.salt, protection.iterations)) : null
  const macKey = randomBytes(20)
  const head = `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
  xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#" xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#">`
  let protectionXml = ''
  if (protection && 'psk' in protection) protectionXml = '<EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>'
  if (protection && 'password' in protection) {
    protectionXml = `<EncryptionKey><xenc11:DerivedKey><xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
      <pkcs5:PBKDF2-params><Salt><Specified>${protection.salt.toString('base64')}</Specified></Salt><IterationCount>${protection.iterations}</IterationCount><KeyLength>16</KeyLength><PRF/></pkcs5:PBKDF2-params>
      </xenc11:KeyDerivationMethod><xenc11:MasterKeyName>Password</xenc11:MasterKeyName></xenc11:DerivedKey></EncryptionKey>`
  }
  const macUri = macAlg === 'sha1' ? 'http://www.w3.org/2000/09/xmldsig#hmac-sha1' : 'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256'
  const macXml = encryption ? `<MACMethod Algorithm="${macUri}"><MACKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
    <xenc:CipherData><xenc:CipherValue>${aes128(encryption, randomBytes(16), macKey).toString('base64')}</xenc:CipherValue></xenc:CipherData></MACKey></MACMethod>` : ''
  const packages = keys.map((k) => {
    const seed = Buffer.from(seedOf(k.serial).hex, 'hex')
    let secret: string
    if (encryption) {
      const cipher = aes128(encryption, randomBytes(16), seed)
      let mac = hmac(macAlg, macKey, cipher)
      if (k.mac === 'tampered') mac = Buffer.from(mac.map((b, i) => (i === 0 ? b ^ 1 : b)))
      secret = `<EncryptedValue><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><xenc:CipherData><xenc:CipherValue>${cipher.toString('base64')}</xenc:CipherValue></xenc:CipherData></EncryptedValue>`
        + (k.mac === 'missing' ? '' : `<ValueMAC>${mac.toString('base64')}</ValueMAC>`)
    } else {
      secret = `<PlainValue>${seed.toString('base64')}</PlainValue>`
    }
    const algorithm = k.kind === 'totp' ? 'urn:ietf:params:xml:ns:keyprov:pskc#totp' : 'urn:ietf:params:xml:ns:keyprov:pskc:hotp'
    const data = k.kind === 'totp' ? `<TimeInterval><PlainValue>${k.interval ?? 30}</PlainValue></TimeInterval>` : '<Counter><PlainValue>5</PlainValue></Counter>'
    return `<KeyPackage><DeviceInfo><Manufacturer>Token2</Manufacturer><SerialNo>${k.serial}</SerialNo><Model>C203</Model></DeviceInfo>
  <Key Id="${k.serial}" Algorithm="${algorithm}"><AlgorithmParameters>${k.suite ? `<Suite>${k.suite}</Suite>` : ''}<ResponseFormat Length="${k.digits ?? 6}" Encoding="DECIMAL"/></AlgorithmParameters>
  <Data><Secret>${secret}</Secret>${data}</Data>${k.user ? `<UserId>${k.user}</UserId>` : ''}</Key></KeyPackage>`
  })
  return `${head}\n${protectionXml}\n${macXml}\n${packages.join('\n')}\n</KeyContainer>\n`
}

t.test('pre-shared key: AES-128-CBC by OpenSSL, HMAC-SHA1 and HMAC-SHA256 MACs; tampered and missing MACs refused', async (t) => {
  const psk = randomBytes(16)
  for (const alg of ['sha1', 'sha256'] as const) {
    const xml = containerXml([
      { serial: 'PS-1', kind: 'totp' }, { serial: 'PS-2', kind: 'hotp', digits: 8, suite: 'HMAC-SHA256' },
      { serial: 'PS-3', kind: 'totp', mac: 'tampered' }, { serial: 'PS-4', kind: 'totp', mac: 'missing' },
    ], { psk }, alg)
    const result = await rows(xml, { psk })
    t.same(result.map(summary), [
      { serial: 'PS-1', kind: 'totp', digits: 6, counter: null, period: 30, algorithm: 'SHA1', seed: seedOf('PS-1').hex },
      { serial: 'PS-2', kind: 'hotp', digits: 8, counter: 5, period: null, algorithm: 'SHA256', seed: seedOf('PS-2').hex },
      { serial: 'PS-3', reason: 'MAC mismatch: wrong password or pre-shared key, or the file was changed' },
      { serial: 'PS-4', reason: 'the secret is encrypted without a ValueMAC: its integrity cannot be checked' },
    ], `MAC ${alg}`)
  }
  const xml = containerXml([{ serial: 'PS-5', kind: 'totp' }], { psk })
  t.match((await rows(xml, { psk: randomBytes(16) })).map(summary), [{ serial: 'PS-5', reason: /wrong password or pre-shared key/ }], 'another key: refused, said plainly')
  t.match((await rows(xml)).map(summary), [{ serial: 'PS-5', reason: 'the keys are encrypted with a pre-shared key: give it (in hex)' }])
})

t.test('password: PBKDF2 by OpenSSL; a wrong password is refused per key', async (t) => {
  const salt = randomBytes(8)
  const xml = containerXml([{ serial: 'PW-1', kind: 'totp', user: 'nora@example.com' }, { serial: 'PW-2', kind: 'hotp' }], { password: 'correct battery', salt, iterations: 2000 })
  t.same((await rows(xml, { password: 'correct battery' })).map(summary), [
    { serial: 'PW-1', kind: 'totp', digits: 6, counter: null, period: 30, algorithm: 'SHA1', seed: seedOf('PW-1').hex },
    { serial: 'PW-2', kind: 'hotp', digits: 6, counter: 5, period: null, algorithm: 'SHA1', seed: seedOf('PW-2').hex },
  ])
  t.match((await rows(xml, { password: 'correct battery' }))[0], { ok: true, token: { upn: 'nora@example.com', manufacturer: 'Token2', model: 'C203' } })
  const wrong = (await rows(xml, { password: 'wrong battery' })).map(summary)
  t.equal(wrong.length, 2)
  t.match(wrong, [{ serial: 'PW-1', reason: /wrong password or pre-shared key/ }, { serial: 'PW-2', reason: /wrong password or pre-shared key/ }])
  t.match((await rows(xml)).map(summary), [{ reason: 'the keys are encrypted with a password: give the password' }, {}])
})

t.test('unsafe or broken XML: refused fast, with a reason, nothing read', async (t) => {
  const bomb = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo><SerialNo>&lol9;</SerialNo></DeviceInfo></KeyPackage></KeyContainer>`
  const started = performance.now()
  await t.rejects(rows(bomb), new UnusableFile('the file has a DTD (<!DOCTYPE ...>): PSKC files have none, and a DTD is refused (no entity expansion, no external reference)'))
  t.ok(performance.now() - started < 1000, 'at once')
  const xxe = `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo><SerialNo>&xxe;</SerialNo></DeviceInfo></KeyPackage></KeyContainer>`
  await t.rejects(rows(xxe), { name: 'UnusableFile', message: /has a DTD/ })
  const undeclared = `<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo><SerialNo>&xxe;</SerialNo></DeviceInfo></KeyPackage></KeyContainer>`
  await t.rejects(rows(undeclared), { name: 'UnusableFile', message: /^not well-formed XML at line 1, column \d+: undefined entity/ }, 'an entity nobody declared')
  await t.rejects(rows('<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage></KeyContainer>'), { name: 'UnusableFile', message: /not well-formed XML/ })
  await t.rejects(rows('<html><body>no</body></html>'), { name: 'UnusableFile', message: /not a PSKC file: it starts with <html>/ })
  await t.rejects(rows(''), { name: 'UnusableFile', message: /empty/ })
  await t.rejects(rows(`<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo><SerialNo>${'1'.repeat(20_000)}</SerialNo></DeviceInfo></KeyPackage></KeyContainer>`),
    { name: 'UnusableFile', message: /holds more than 16384 characters/ })
})

t.test('tampering and shapes an attacker would try: refused, or not read', async (t) => {
  const psk = Buffer.from('12345678901234567890123456789012', 'hex')
  const six = (await figure(6)).toString()
  const reasonOf = async (xml: string, secret: PskcSecret = { psk }) => (await rows(xml, secret)).map(summary)
  const plainSeed = Buffer.from('ATTACKER-KNOWN-SEED!').toString('base64')
  t.match(await reasonOf(six.replace('<ValueMAC>', `<PlainValue>${plainSeed}</PlainValue><ValueMAC>`)), [{ reason: 'a Secret with more than one value' }], 'a plain value beside the encrypted one')
  t.match(await reasonOf(six.replace(/<Secret>[\s\S]*<\/Secret>/, `<Secret><PlainValue>${plainSeed}</PlainValue></Secret>`)), [{ reason: /a plain secret in a file whose keys are encrypted/ }], 'the encrypted secret swapped for a plain one')
  t.match(await reasonOf(six.replace('</Secret>', `</Secret><Secret><PlainValue>${plainSeed}</PlainValue></Secret>`)), [{ reason: /more than one Secret|more than one value/ }], 'a second Secret')
  t.same(await reasonOf(six.replace('<ValueMAC>', `<x:PlainValue xmlns:x="urn:evil">${plainSeed}</x:PlainValue><ValueMAC>`)),
    [{ serial: '987654321', kind: 'hotp', digits: 8, counter: 0, period: null, algorithm: 'SHA1', seed: RFC_SEED }], 'an element of another namespace is not read')
  t.same(await reasonOf(six.replace('<KeyPackage>', '<x:KeyPackage xmlns:x="urn:evil"><x:DeviceInfo><x:SerialNo>EVIL</x:SerialNo></x:DeviceInfo></x:KeyPackage><KeyPackage>')).then((r) => r.map((x) => x.serial)), ['987654321'], 'a KeyPackage of another namespace is not read')
  await t.rejects(rows(six.replace('<CryptoModuleInfo>', '<KeyPackage><DeviceInfo><SerialNo>INNER</SerialNo></DeviceInfo></KeyPackage><CryptoModuleInfo>'), { psk }), { name: 'UnusableFile', message: /a KeyPackage at line \d+ is not where PSKC puts it/ }, 'a KeyPackage inside a KeyPackage')
  await t.rejects(rows(six.replace('</KeyContainer>', '<MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"/></KeyContainer>'), { psk }), { name: 'UnusableFile', message: /after the first KeyPackage/ }, 'container settings after the keys')
  t.match(await reasonOf(six.replace(/<xenc:EncryptionMethod\s+Algorithm="http:\/\/www.w3.org\/2001\/04\/xmlenc#aes128-cbc"\/>\s*<xenc:CipherData>\s*<xenc:CipherValue>\s*AAEC/, '<xenc:CipherData><xenc:CipherValue>AAEC')), [{ reason: "the secret's EncryptionMethod is missing" }], 'a value without its own EncryptionMethod does not borrow another')
  t.match(await reasonOf(six.replace('<PlainValue>0</PlainValue>', '<PlainValue>0x10</PlainValue>')), [{ reason: 'the counter must be a whole number of 0 or more' }], 'numbers are strict')
  t.match(await reasonOf(six.replace('<MACKey>', '<MACKeyReference>agreed</MACKeyReference><MACKey>')), [{ reason: /MACKeyReference/ }])

  const deep = `<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">${'<a>'.repeat(20_000)}`
  let started = performance.now()
  await t.rejects(rows(deep, {}, 65_536), { name: 'UnusableFile', message: /nested more than 32 deep/ })
  t.ok(performance.now() - started < 500, 'deep nesting is refused at once, not after seconds of work')
  started = performance.now()
  await t.rejects(rows(`<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><DeviceInfo><SerialNo>${'1'.repeat(200_000)}`, {}, 65_536), { name: 'UnusableFile', message: /more than 65536 characters without a tag/ })
  await t.rejects(rows(`<?xml version="1.0"?><!DOCTYPE x [ <!ENTITY a "${'a'.repeat(1000)}`), { name: 'UnusableFile', message: /has a DTD/ }, 'an unterminated DTD')
  const salt = randomBytes(8)
  const slow = containerXml([{ serial: 'IT-1', kind: 'totp' }], { password: 'p', salt, iterations: 1000 }).replace('<IterationCount>1000<', '<IterationCount>10000000<')
  t.match(await reasonOf(slow, { password: 'p' }), [{ reason: /PBKDF2 parameters are not usable/ }], 'ten million iterations: refused before they are spent')
})

// --- Through the gateway ----------------------------------------------------------------------------

t.test('imported through the API and the CLI, then activated with codes from oathtool', async (t) => {
  const MASTER = randomBytes(32).toString('base64')
  const { app, database, clock, logs } = await testApp(t, { TESSERA_MASTER_KEY: MASTER })
  const unix = () => Math.floor(clock.now.getTime() / 1000)
  const nora = await addUser(app, 'nora@example.com')
  const key = await createApiKey(app.commands, { name: 'import', role: 'admin' }, metadata())
  const psk = randomBytes(16)
  const xml = containerXml([{ serial: 'API-1', kind: 'totp', user: 'nora@example.com' }, { serial: 'API-2', kind: 'hotp' }, { serial: 'API-3', kind: 'totp', mac: 'tampered' }], { psk })
  const count = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)

  const before = await count()
  const inUrl = await app.inject({ method: 'POST', url: '/admin/api/tokens/import?format=pskc', payload: xml,
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/pskc+xml', 'x-pskc-key': 'not hex' } })
  t.equal(inUrl.statusCode, 400)
  t.match(inUrl.json().message, /X-PSKC-Key must be the pre-shared key in hex/)
  t.equal(await count(), before, 'a refusal writes nothing')

  const res = await app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: xml,
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/pskc+xml', 'x-pskc-key': psk.toString('hex') } })
  t.equal(res.statusCode, 200, 'recognised as PSKC from its type')
  t.match(res.json(), { imported: 2, rejected: [{ serial: 'API-3', reason: 'MAC mismatch: wrong password or pre-shared key, or the file was changed' }] })
  const imported = (await sql<{ serial: string; kind: string; user_id: string | null; manufacturer: string }>`select serial, kind, user_id, manufacturer from tokens
    where serial like 'API-%' order by serial`.execute(database.db)).rows
  t.same(imported, [{ serial: 'API-1', kind: 'totp', user_id: nora.userId, manufacturer: 'Token2' }, { serial: 'API-2', kind: 'hotp', user_id: null, manufacturer: 'Token2' }])
  const events = JSON.stringify((await sql`select data from events where stream_id like 'token-API-%'`.execute(database.db)).rows)
  t.match(events, /"source":"pskc"/)
  t.notMatch(events, seedOf('API-1').hex)
  t.notMatch(logs.join('\n'), psk.toString('hex'), 'the key is in no log line')
  await activateToken(app.commands, { serial: 'API-1', userId: nora.userId, name: 'Fob', code: totpAt(seedOf('API-1').hex, unix()) }, metadata())
  await activateToken(app.commands, { serial: 'API-2', userId: nora.userId, name: 'Counter fob', code: hotpAt(seedOf('API-2').hex, 5) }, metadata())
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from tokens where user_id = ${nora.userId} and status = 'active'`.execute(database.db)).rows[0]!.n), 2,
    'oathtool codes activate both: the seeds came through whole')

  // A password that is not ASCII, sent as UTF-8 in the header, as any client sends it.
  const accents = containerXml([{ serial: 'UTF-1', kind: 'totp' }], { password: 'Pässwörd€', salt: randomBytes(8), iterations: 1000 })
  const accented = await app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: accents,
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'Application/PSKC+XML', 'x-pskc-password': Buffer.from('Pässwörd€', 'utf8').toString('latin1') } })
  t.match(accented.json(), { imported: 1, rejectedCount: 0 }, 'a UTF-8 password in a header; the type in any case')
  // Cut short (no end to it): nothing of it is written, though its first 2,500 keys (more than a batch) were whole.
  const many = containerXml(Array.from({ length: 2600 }, (_, i) => ({ serial: `CUT-${i}`, kind: 'totp' as const })), null)
  const before2 = await count()
  const cut = await app.inject({ method: 'POST', url: '/admin/api/tokens/import', payload: many.slice(0, many.indexOf('<SerialNo>CUT-2500<')),
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/pskc+xml' } })
  t.equal(cut.statusCode, 400)
  t.match(cut.json().message, /not well-formed XML/)
  t.equal(await count(), before2, 'nothing of it imported')

  await fs.mkdir(TEST_DATA_DIR, { recursive: true })
  const dir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'pskc-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const salt = randomBytes(8)
  const file = path.join(dir, 'tokens.pskcxml')
  await fs.writeFile(file, containerXml([{ serial: 'CLI-1', kind: 'totp' }, { serial: 'CLI-2', kind: 'totp', mac: 'missing' }], { password: 'vendor password', salt, iterations: 1000 }))
  const env = { DATABASE_URL: database.url, TESSERA_MASTER_KEY: MASTER }
  const wrong = await tessera(['tokens', 'import', file, '--password-stdin'], env, 'not it\n')
  t.equal(wrong.code, 1)
  t.match(wrong.stderr, /serial CLI-1: wrong password or pre-shared key/)
  t.match(wrong.stdout, /imported 0 tokens, rejected 2 rows/)
  const run = await tessera(['tokens', 'import', file, '--password-stdin'], env, 'vendor password\n')
  t.equal(run.code, 1, 'one key refused')
  t.match(run.stdout, /imported 1 token, rejected 1 row/)
  t.match(run.stderr, /line \d+, serial CLI-2: the secret is encrypted without a ValueMAC/)
  const again = await tessera(['tokens', 'import', file, '--password-stdin'], env, 'vendor password\n')
  t.match(again.stderr, /serial CLI-1: serial already in the inventory/, 'the same file again: reported as already in')
  const both = await tessera(['tokens', 'import', file, '--psk', psk.toString('hex'), '--password-stdin'], env, 'x\n')
  t.equal(both.code, 2)
  t.match(both.stderr, /give either --psk or --password-stdin, not both/)
  const bomb = path.join(dir, 'bomb.xml')
  await fs.writeFile(bomb, '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa">]><KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>')
  const refused = await tessera(['tokens', 'import', bomb], env)
  t.equal(refused.code, 2)
  t.match(refused.stderr, /bomb\.xml cannot be imported: the file has a DTD/)
})
