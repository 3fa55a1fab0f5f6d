// PSKC key containers (RFC 6030), as vendors ship hardware tokens' seeds, read as they stream in (a SAX
// parser, `saxes`, the one jsdom uses): only the current KeyPackage is held, so a file of 100,000 keys reads in flat memory.
// Strict where others were lax:
// - XML: a DTD is refused outright (no entity expansion, no external reference can happen); only XML's
//   own five entities exist; a file that is not well-formed stops at the first error, with its line.
// - Keys: plaintext (PlainValue); encrypted with a pre-shared key (section 6.1: AES-128/192/256-CBC,
//   Triple DES-CBC, AES key wrap) or with a key derived from a password (section 6.2: PBKDF2). An
//   encrypted key must carry a ValueMAC, checked as the file's MACMethod declares (HMAC-SHA1/224/256/384/
//   512 over the IV and ciphertext, with the MACKey the file holds encrypted, or the encryption key when it
//   holds none), compared in constant time, before anything is decrypted. No MAC, or a wrong one, refuses
//   the key. RSA key transport (section 6.3) is refused with a reason.
// - Per key: serial (DeviceInfo/SerialNo), algorithm (pskc:hotp, pskc#totp), digits (ResponseFormat
//   Length, decimal), time step (TimeInterval), counter, hash algorithm (Suite), manufacturer and model, the
//   user (UserId) when the file names one. Each refused key is reported with the line its KeyPackage starts
//   on, its serial and the reason; the others import.
import { createDecipheriv, createHmac, pbkdf2, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { SaxesParser, type SaxesTagNS } from 'saxes'
import type { InventoryInput } from './lines.js'
import { isUpn, rejected, SerialsSeen, seedLengthProblem, serialProblem, shown } from './fields.js'
import { UnusableFile, type OtpAlgorithm, type ParsedRow } from './types.js'

const PSKC_NS = 'urn:ietf:params:xml:ns:keyprov:pskc'
/** The longest text an element may hold: a base64 value of a long seed is well under it. */
const MAX_TEXT = 16 * 1024
/** A PBKDF2 iteration count above this is a denial of service, not a key file (OWASP asks 1,300,000 of SHA-1 for passwords at rest). */
const MAX_ITERATIONS = 2_000_000
/** Elements nested deeper than this are not a PSKC file (its deepest path is about 10): refused at once. */
const MAX_DEPTH = 32
/** The longest stretch of a file between two '<' or '>' (a text, an attribute, a name): longer is refused before it is held. */
const MAX_STRETCH = 64 * 1024

const XENC_NS = 'http://www.w3.org/2001/04/xmlenc#'
const XENC11_NS = 'http://www.w3.org/2009/xmlenc11#'
const DS_NS = 'http://www.w3.org/2000/09/xmldsig#'
const PKCS5_NS = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#'
const PBKDF2_URI = 'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2'
/** The namespaces each element this parser reads may be in; any other element, and what it holds, is ignored. */
const ELEMENT_NS: Record<string, readonly string[]> = {
  EncryptionMethod: [XENC_NS], CipherData: [XENC_NS], CipherValue: [XENC_NS],
  KeyName: [DS_NS], X509Data: [DS_NS], X509Certificate: [DS_NS], KeyValue: [DS_NS],
  DerivedKey: [XENC11_NS], KeyDerivationMethod: [XENC11_NS], MasterKeyName: [XENC11_NS],
  // PBKDF2-params' children are unqualified in RFC 6030's figure 7: in no namespace, or the document's default one.
  'PBKDF2-params': [PKCS5_NS], Salt: ['', PKCS5_NS, PSKC_NS], Specified: ['', PKCS5_NS, PSKC_NS], IterationCount: ['', PKCS5_NS, PSKC_NS],
  KeyLength: ['', PKCS5_NS, PSKC_NS], PRF: ['', PKCS5_NS, PSKC_NS],
}
/** Where each structural element may stand: its parent. */
const PARENTS: Record<string, string> = { KeyPackage: 'KeyContainer', Key: 'KeyPackage', DeviceInfo: 'KeyPackage', Data: 'Key', Secret: 'Data',
  EncryptionKey: 'KeyContainer', MACMethod: 'KeyContainer', MACKey: 'MACMethod', ValueMAC: 'Secret' }
/** Strict whole numbers: no '0x10', no '3e1'. */
const wholeNumber = (text: string): number | null => (/^\d{1,15}$/.test(text) ? Number(text) : null)

/** What opens the file's encrypted keys: a pre-shared key, or the password it was derived from. */
export interface PskcSecret {
  psk?: Buffer
  password?: string
}

const CIPHERS: Record<string, { name: string; keyBytes: number; iv: number } | undefined> = {
  'http://www.w3.org/2001/04/xmlenc#aes128-cbc': { name: 'aes-128-cbc', keyBytes: 16, iv: 16 },
  'http://www.w3.org/2001/04/xmlenc#aes192-cbc': { name: 'aes-192-cbc', keyBytes: 24, iv: 16 },
  'http://www.w3.org/2001/04/xmlenc#aes256-cbc': { name: 'aes-256-cbc', keyBytes: 32, iv: 16 },
  'http://www.w3.org/2001/04/xmlenc#tripledes-cbc': { name: 'des-ede3-cbc', keyBytes: 24, iv: 8 },
  'http://www.w3.org/2001/04/xmlenc#kw-aes128': { name: 'id-aes128-wrap', keyBytes: 16, iv: 0 },
  'http://www.w3.org/2001/04/xmlenc#kw-aes192': { name: 'id-aes192-wrap', keyBytes: 24, iv: 0 },
  'http://www.w3.org/2001/04/xmlenc#kw-aes256': { name: 'id-aes256-wrap', keyBytes: 32, iv: 0 },
}

const MACS: Record<string, string | undefined> = {
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'sha1',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha224': 'sha224',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha384': 'sha384',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha512': 'sha512',
}

const PRFS: Record<string, string | undefined> = {
  '': 'sha1',
  'http://www.w3.org/2000/09/xmldsig#hmac-sha1': 'sha1',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha224': 'sha224',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha384': 'sha384',
  'http://www.w3.org/2001/04/xmldsig-more#hmac-sha512': 'sha512',
  'http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#hmac-sha1': 'sha1',
}

const ALGORITHMS: Record<string, 'hotp' | 'totp' | undefined> = {
  'urn:ietf:params:xml:ns:keyprov:pskc:hotp': 'hotp',
  'urn:ietf:params:xml:ns:keyprov:pskc#hotp': 'hotp',
  'urn:ietf:params:xml:ns:keyprov:pskc#totp': 'totp',
  'urn:ietf:params:xml:ns:keyprov:pskc:totp': 'totp',
}

const HASHES: Record<string, OtpAlgorithm | undefined> = {
  '': 'SHA1', SHA1: 'SHA1', 'HMAC-SHA1': 'SHA1', 'SHA-1': 'SHA1', 'HMAC-SHA-1': 'SHA1',
  SHA256: 'SHA256', 'HMAC-SHA256': 'SHA256', 'SHA-256': 'SHA256', 'HMAC-SHA-256': 'SHA256',
  SHA512: 'SHA512', 'HMAC-SHA512': 'SHA512', 'SHA-512': 'SHA512', 'HMAC-SHA-512': 'SHA512',
}

interface Encrypted {
  algorithm: string
  cipher: Buffer
}

/** One KeyPackage as read, before it is checked. */
interface KeyPackage {
  line: number
  serial: string
  manufacturer: string
  model: string
  algorithm: string
  digits: string
  encoding: string
  suite: string
  user: string
  plain: string | null
  encrypted: Encrypted | null
  mac: string | null
  counter: string
  interval: string
  extraKeys: number
  /** Why the key is refused whatever else it holds (two secrets, an encrypted counter, ...), or null. */
  malformed: string | null
}

/** The container's part: how its keys are protected. */
interface Container {
  keyName: boolean
  derived: { salt: string; iterations: string; keyLength: string; prf: string } | null
  asymmetric: boolean
  macAlgorithm: string | null
  macKey: Encrypted | null
  /** MACKeyReference: a MAC key agreed out of band, which this gateway cannot know. */
  macKeyReference: boolean
  /** A key derivation this gateway does not support (named). */
  unsupportedDerivation: string | null
}

const base64 = (text: string): Buffer | null => {
  const clean = text.replace(/\s+/g, '')
  return /^[A-Za-z0-9+/]*={0,2}$/.test(clean) && clean.length % 4 === 0 ? Buffer.from(clean, 'base64') : null
}

/** Decrypts an xmlenc value: null when the key cannot (wrong length, padding, algorithm). */
function decrypt(value: Encrypted, key: Buffer): Buffer | null {
  const cipher = CIPHERS[value.algorithm]
  if (!cipher || key.length !== cipher.keyBytes) return null
  try {
    const iv = cipher.iv === 0 ? Buffer.from('A6A6A6A6A6A6A6A6', 'hex') : value.cipher.subarray(0, cipher.iv)
    const body = value.cipher.subarray(cipher.iv)
    if (body.length === 0) return null
    const decipher = createDecipheriv(cipher.name, key, iv)
    return Buffer.concat([decipher.update(body), decipher.final()])
  } catch {
    return null
  }
}

/** The keys that open the file's encrypted values, worked out once when the first KeyPackage starts. */
interface Keys {
  encryption: Buffer | null
  mac: Buffer | null
  /** Why encrypted keys cannot be read: said for each of them. */
  problem: string | null
}

async function containerKeys(container: Container, secret: PskcSecret): Promise<Keys> {
  if (container.asymmetric) {
    return { encryption: null, mac: null, problem: 'keys encrypted to an RSA key (RFC 6030 section 6.3) are not supported: ask for a file encrypted with a password or a pre-shared key' }
  }
  if (container.unsupportedDerivation !== null) {
    return { encryption: null, mac: null, problem: `the key derivation method${shown(container.unsupportedDerivation.replace(/^.*[:#]/, ''))} is not supported: only PBKDF2 (RFC 6030 section 6.2)` }
  }
  if (container.macKeyReference) {
    return { encryption: null, mac: null, problem: 'the file\'s MAC key is agreed elsewhere (MACKeyReference): this gateway cannot check its MACs' }
  }
  let encryption: Buffer | null = null
  if (container.derived) {
    const d = container.derived
    if (secret.password === undefined) return { encryption: null, mac: null, problem: 'the keys are encrypted with a password: give the password' }
    const salt = base64(d.salt)
    const iterations = wholeNumber(d.iterations)
    const length = d.keyLength === '' ? 16 : wholeNumber(d.keyLength)
    const prf = PRFS[d.prf]
    if (!salt || salt.length < 8 || iterations === null || iterations < 1 || iterations > MAX_ITERATIONS || (length !== 16 && length !== 24 && length !== 32) || !prf) {
      return { encryption: null, mac: null, problem: `the file's PBKDF2 parameters are not usable: a salt of 8 bytes or more, 1 to ${MAX_ITERATIONS.toLocaleString('en')} iterations, a key of 16, 24 or 32 bytes, an HMAC PRF` }
    }
    encryption = await promisify(pbkdf2)(secret.password, salt, iterations, length, prf)
  } else if (container.keyName || secret.psk) {
    if (!secret.psk) return { encryption: null, mac: null, problem: 'the keys are encrypted with a pre-shared key: give it (in hex)' }
    encryption = secret.psk
  }
  let mac: Buffer | null = null
  if (container.macKey) {
    mac = encryption && decrypt(container.macKey, encryption)
    if (!mac) return { encryption, mac: null, problem: 'wrong password or pre-shared key: the file\'s MAC key does not decrypt with it' }
  } else {
    // No MACKey: the encryption key itself is the MAC key (as RFC 6030's drafts had it).
    mac = encryption
  }
  return { encryption, mac, problem: null }
}

function checkPackage(p: KeyPackage, container: Container, keys: Keys | null, serials: SerialsSeen): ParsedRow {
  const serial = p.serial.trim()
  const line = p.line
  const problem = serialProblem(serial)
  if (problem) return rejected(line, serial || null, serial === '' ? 'no serial number (DeviceInfo/SerialNo)' : problem)
  const duplicate = serials.check(serial, line)
  if (duplicate) return rejected(line, serial, duplicate)
  if (p.extraKeys > 0) return rejected(line, serial, 'a KeyPackage holds more than one Key')
  if (p.malformed) return rejected(line, serial, p.malformed)
  const kind = ALGORITHMS[p.algorithm.trim()]
  if (!kind) return rejected(line, serial, `unsupported algorithm${shown(p.algorithm.replace(/^.*[:#]/, ''))}: only HOTP and TOTP`)
  if (p.encoding !== '' && p.encoding !== 'DECIMAL') return rejected(line, serial, 'codes that are not decimal digits are not supported')
  const digits = p.digits === '' ? 6 : wholeNumber(p.digits)
  if (digits !== 6 && digits !== 8) return rejected(line, serial, 'codes must have 6 or 8 digits (ResponseFormat Length)')
  const hash = HASHES[p.suite.trim().toUpperCase()]
  if (!hash) return rejected(line, serial, `unsupported hash algorithm${shown(p.suite.trim())} (Suite): SHA1, SHA256 or SHA512`)
  const period = kind === 'totp' ? (p.interval === '' ? 30 : wholeNumber(p.interval)) : null
  if (period !== null && period !== 30 && period !== 60) return rejected(line, serial, 'the time step (TimeInterval) must be 30 or 60 seconds')
  const counter = kind === 'hotp' ? (p.counter === '' ? 0 : wholeNumber(p.counter)) : null
  if (kind === 'hotp' && counter === null) return rejected(line, serial, 'the counter must be a whole number of 0 or more')
  const user = p.user.trim()
  if (user !== '' && !isUpn(user)) return rejected(line, serial, 'the user (UserId) is not a user principal name (name@domain)')

  let seed: Buffer | null
  if (p.plain !== null) {
    // A file that protects its keys protects every one: a plain secret in it is a key someone put there.
    if (container.keyName || container.derived || container.macAlgorithm !== null || keys?.encryption) {
      return rejected(line, serial, 'a plain secret in a file whose keys are encrypted: refused (it carries no MAC)')
    }
    seed = base64(p.plain)
    if (!seed) return rejected(line, serial, 'the secret (PlainValue) is not base64')
  } else if (p.encrypted) {
    if (keys?.problem) return rejected(line, serial, keys.problem)
    if (!CIPHERS[p.encrypted.algorithm]) return rejected(line, serial, p.encrypted.algorithm === '' ? 'the secret\'s EncryptionMethod is missing' : 'the secret is encrypted with an algorithm this gateway does not support')
    if (p.encrypted.cipher.length === 0) return rejected(line, serial, 'the secret (CipherValue) is not base64')
    if (!keys) return rejected(line, serial, 'the secret is encrypted but the file says nothing of its key')
    if (!keys.encryption) return rejected(line, serial, 'the secret is encrypted but the file says nothing of its key')
    // The MAC first, over the IV and ciphertext, in constant time: nothing unauthenticated is decrypted.
    if (p.mac === null) return rejected(line, serial, 'the secret is encrypted without a ValueMAC: its integrity cannot be checked')
    const macAlgorithm = container.macAlgorithm === null ? null : MACS[container.macAlgorithm]
    if (!macAlgorithm) return rejected(line, serial, container.macAlgorithm === null ? 'the file has no MACMethod for its ValueMAC' : 'the file\'s MACMethod is not one this gateway supports')
    const given = base64(p.mac)
    const expected = createHmac(macAlgorithm, keys.mac!).update(p.encrypted.cipher).digest()
    if (!given || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return rejected(line, serial, 'MAC mismatch: wrong password or pre-shared key, or the file was changed')
    }
    seed = decrypt(p.encrypted, keys.encryption)
    if (!seed) return rejected(line, serial, 'the secret does not decrypt with the given key')
  } else {
    return rejected(line, serial, 'no secret (Data/Secret): a key held elsewhere (KeyReference) cannot be imported')
  }
  const lengthProblem = seedLengthProblem('the secret', seed.length)
  if (lengthProblem) return rejected(line, serial, lengthProblem)
  return {
    ok: true,
    token: { line, serial, kind, algorithm: hash, digits, period, counter, seed, upn: user === '' ? null : user,
      manufacturer: p.manufacturer.trim().slice(0, 64) || null, model: p.model.trim().slice(0, 64) || null },
  }
}

const newPackage = (line: number): KeyPackage => ({ line, serial: '', manufacturer: '', model: '', algorithm: '', digits: '', encoding: '', suite: '',
  user: '', plain: null, encrypted: null, mac: null, counter: '', interval: '', extraKeys: 0, malformed: null })

/** The keys of a PSKC file; throws UnusableFile (while iterating) for a file that cannot be used at all. */
export async function* parsePskc(input: InventoryInput, secret: PskcSecret = {}): AsyncGenerator<ParsedRow> {
  const parser = new SaxesParser({ xmlns: true, position: true })
  /** Each open element's name as read here: its local name, or '?' for one in a namespace it does not belong in. */
  const stack: string[] = []
  const container: Container = { keyName: false, derived: null, asymmetric: false, macAlgorithm: null, macKey: null, macKeyReference: false, unsupportedDerivation: null }
  const seenInContainer = new Set<string>()
  let text = ''
  let current: KeyPackage | null = null
  let packages = 0
  let keys: Keys | null = null
  let keysPending = false
  /** The EncryptionMethod of the value being read (an EncryptedValue or the MACKey); '' until one is given. */
  let encryptionAlgorithm = ''
  let secrets = 0
  let sawRoot = false
  let keysInPackage = 0
  const done: KeyPackage[] = []
  /** Throwing from a handler stops saxes at once, mid-chunk (write() rethrows it). */
  const stop = (message: string): never => {
    throw new UnusableFile(message)
  }

  parser.on('doctype', () => stop('the file has a DTD (<!DOCTYPE ...>): PSKC files have none, and a DTD is refused (no entity expansion, no external reference)'))
  parser.on('opentag', (node: SaxesTagNS) => {
    if (stack.length >= MAX_DEPTH) stop(`elements are nested more than ${MAX_DEPTH} deep at line ${parser.line}: this is not a PSKC file`)
    const attr = (n: string) => node.attributes[n]?.value ?? ''
    const parent = stack[stack.length - 1]
    if (!sawRoot) {
      sawRoot = true
      if (node.local !== 'KeyContainer' || node.uri !== PSKC_NS) stop(`not a PSKC file: it starts with <${node.name.slice(0, 40)}>, not a KeyContainer of ${PSKC_NS}`)
      const version = attr('Version')
      if (version !== '' && version !== '1.0') stop(`PSKC version ${version.slice(0, 10)} is not supported (1.0 is)`)
      stack.push('KeyContainer')
      return
    }
    // An element in a namespace it does not belong in, or under a parent that is one, is not read.
    const expected = ELEMENT_NS[node.local] ?? [PSKC_NS]
    const name = parent === '?' || !expected.includes(node.uri) ? '?' : node.local
    stack.push(name)
    text = ''
    if (name === '?') return
    if (name === 'EncryptedValue' && parent !== 'Secret') {
      // A counter or time held encrypted: this gateway would read it as absent, so the key is refused.
      if (current) current.malformed ??= 'an encrypted Counter or Time is not supported'
      stack[stack.length - 1] = '?'
      return
    }
    if (PARENTS[name] && PARENTS[name] !== parent) {
      if (name === 'KeyPackage' || name === 'Key') stop(`a ${name} at line ${parser.line} is not where PSKC puts it (in a ${PARENTS[name]})`)
      if (current) current.malformed ??= `a ${name} that is not in a ${PARENTS[name]}`
      else stop(`a ${name} at line ${parser.line} is not where PSKC puts it (in a ${PARENTS[name]})`)
      stack[stack.length - 1] = '?'
      return
    }
    if (!current && parent === 'KeyContainer') {
      // The container's settings come first and once: after the first KeyPackage, or twice, is refused.
      if (name !== 'KeyPackage') {
        if (packages > 0) stop(`a ${name} after the first KeyPackage (line ${parser.line}): the container's settings come before its keys`)
        if (seenInContainer.has(name)) stop(`the container has more than one ${name}`)
        seenInContainer.add(name)
      }
    }
    switch (name) {
      case 'KeyPackage':
        current = newPackage(parser.line)
        packages++
        keysInPackage = 0
        secrets = 0
        if (!keys) keysPending = true
        break
      case 'Key':
        keysInPackage++
        if (keysInPackage > 1) current!.extraKeys++
        else current!.algorithm = attr('Algorithm')
        break
      case 'Secret':
        if (++secrets > 1) current!.malformed ??= 'a key with more than one Secret'
        break
      case 'EncryptedValue':
      case 'MACKey':
        encryptionAlgorithm = ''
        break
      case 'ResponseFormat':
        if (current && parent === 'AlgorithmParameters') {
          current.digits = attr('Length')
          current.encoding = attr('Encoding')
        }
        break
      case 'EncryptionMethod':
        if (parent === 'EncryptedValue' || parent === 'MACKey') encryptionAlgorithm = attr('Algorithm')
        break
      case 'MACMethod':
        if (!current) container.macAlgorithm = attr('Algorithm')
        break
      case 'MACKeyReference':
        if (!current && parent === 'MACMethod') container.macKeyReference = true
        break
      case 'KeyDerivationMethod':
        if (!current && stack.includes('EncryptionKey')) {
          container.derived = { salt: '', iterations: '', keyLength: '', prf: '' }
          if (attr('Algorithm') !== PBKDF2_URI) container.unsupportedDerivation = attr('Algorithm')
        }
        break
      case 'PRF':
        if (container.derived && !current) container.derived.prf = attr('Algorithm')
        break
      case 'X509Data':
      case 'X509Certificate':
      case 'KeyValue':
        if (!current && stack.includes('EncryptionKey')) container.asymmetric = true
        break
    }
  })
  const onText = (t: string) => {
    if (text.length + t.length <= MAX_TEXT) text += t
    else stop(`an element at line ${parser.line} holds more than ${MAX_TEXT} characters`)
  }
  parser.on('text', onText)
  parser.on('cdata', onText)
  parser.on('closetag', () => {
    const name = stack.pop()!
    const parent = stack[stack.length - 1]
    const value = text.trim()
    text = ''
    if (name === '?') return
    const p = current
    if (!p) {
      // The container's own elements.
      if (name === 'KeyName' && parent === 'EncryptionKey') container.keyName = true
      else if (name === 'CipherValue' && parent === 'CipherData' && stack.includes('MACKey')) {
        const cipher = base64(value)
        if (!cipher || cipher.length === 0) stop('the MAC key (MACMethod/MACKey) is not base64')
        container.macKey = { algorithm: encryptionAlgorithm, cipher: cipher! }
      } else if (container.derived && stack.includes('PBKDF2-params')) {
        if (name === 'Specified' && parent === 'Salt') container.derived.salt = value
        else if (name === 'IterationCount') container.derived.iterations = value
        else if (name === 'KeyLength') container.derived.keyLength = value
      }
      return
    }
    switch (name) {
      case 'KeyPackage':
        done.push(p)
        current = null
        break
      case 'SerialNo':
        if (parent === 'DeviceInfo') p.serial = value
        break
      case 'Manufacturer':
        if (parent === 'DeviceInfo') p.manufacturer = value
        break
      case 'Model':
        if (parent === 'DeviceInfo') p.model = value
        break
      case 'Suite':
        if (parent === 'AlgorithmParameters') p.suite = value
        break
      case 'UserId':
        // The key's own user (Key/UserId) before the device's (DeviceInfo/UserId).
        if (parent === 'Key') p.user = value
        else if (parent === 'DeviceInfo' && p.user === '') p.user = value
        break
      case 'PlainValue':
        if (parent === 'Secret') {
          if (p.plain !== null || p.encrypted) p.malformed ??= 'a Secret with more than one value'
          p.plain = value
        } else if (parent === 'Counter') p.counter = value
        else if (parent === 'TimeInterval') p.interval = value
        break
      case 'CipherValue':
        if (parent === 'CipherData' && stack[stack.length - 2] === 'EncryptedValue' && stack[stack.length - 3] === 'Secret') {
          if (p.plain !== null || p.encrypted) p.malformed ??= 'a Secret with more than one value'
          p.encrypted = { algorithm: encryptionAlgorithm, cipher: base64(value) ?? Buffer.alloc(0) }
        }
        break
      case 'ValueMAC':
        if (p.mac !== null) p.malformed ??= 'a Secret with more than one ValueMAC'
        p.mac = value
        break
    }
  })

  // Before saxes holds anything: a DOCTYPE before the root, or a stretch without '<' or '>' longer than
  // anything PSKC has, stops the reading here (saxes keeps a whole text, name or attribute until its end).
  let stretch = 0
  let head = ''
  const screen = (chunk: string) => {
    if (!sawRoot && head.length < 4096) {
      head = (head + chunk).slice(0, 4096)
      if (/<!DOCTYPE/i.test(head)) stop('the file has a DTD (<!DOCTYPE ...>): PSKC files have none, and a DTD is refused (no entity expansion, no external reference)')
    }
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i)
      if (c === 60 || c === 62) stretch = 0
      else if (++stretch > MAX_STRETCH) stop(`more than ${MAX_STRETCH} characters without a tag, at line ${parser.line}: this is not a PSKC file`)
    }
  }
  const write = (chunk: string | null) => {
    try {
      if (chunk === null) parser.close()
      else {
        screen(chunk)
        parser.write(chunk)
      }
    } catch (error) {
      if (error instanceof UnusableFile) throw error
      // Nothing after the first error is trusted: the reading stops here.
      if (chunk === null && !sawRoot) throw new UnusableFile('the file is empty: no PSKC KeyContainer')
      const [, line, column, message] = /^(\d+):(\d+): (.*)$/.exec((error as Error).message.split('\n')[0]!) ?? [, '?', '?', (error as Error).message]
      throw new UnusableFile(`not well-formed XML at line ${line}, column ${column}: ${String(message).slice(0, 200)}`)
    }
  }
  const serials = new SerialsSeen()
  const decoder = new TextDecoder('utf-8', { fatal: false })
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    write(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }))
    if (keysPending && !keys) {
      keys = await containerKeys(container, secret)
      keysPending = false
    }
    while (done.length > 0) yield checkPackage(done.shift()!, container, keys, serials)
  }
  const rest = decoder.decode()
  if (rest) write(rest)
  write(null)
  if (!sawRoot) throw new UnusableFile('the file is empty: no PSKC KeyContainer')
  if (keysPending && !keys) keys = await containerKeys(container, secret)
  while (done.length > 0) yield checkPackage(done.shift()!, container, keys, serials)
}
