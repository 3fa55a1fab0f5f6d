// A Symantec VIP Validate service on loopback, for one test file: HTTPS that requires and checks a client
// certificate, with certificate authorities made at start with the openssl command line (EC P-256, in a
// temporary directory removed at teardown). It reads the request with saxes, answers the ReasonCode the
// credential calls for, and records what it received: tests take the code to type from what the server
// was given, never from the client under test.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { SaxesParser, type SaxesTagNS } from 'saxes'
import type { Test } from 'tap'

export interface VipTestCredential {
  /** The code this credential accepts now. */
  code: string | (() => string)
  state?: 'enabled' | 'disabled' | 'locked'
}

/** An answer sent as is, whatever was asked (the request is still read and recorded). */
export interface RawVipAnswer {
  status?: number
  contentType?: string
  body: string | Buffer
}

export interface VipServerOptions {
  /** By TokenId. */
  credentials: Record<string, VipTestCredential>
  delayMs?: number
  /** The highest TLS version offered (default 1.3): with 1.2 a refused client certificate shows differently. */
  maxTlsVersion?: 'TLSv1.2' | 'TLSv1.3'
}

export interface VipServer {
  /** The Validate endpoint. */
  url: string
  /** The CA of the server's certificate: what the gateway trusts. */
  caPem: Buffer
  /** A client certificate the server accepts (signed by its client CA), PKCS#12. */
  clientPfx: Buffer
  clientPassphrase: string
  /** The same certificate exported with the old RC2 encryption (`openssl pkcs12 -legacy`). */
  legacyClientPfx: Buffer
  /** A client certificate signed by another CA, same passphrase. */
  strangerPfx: Buffer
  /** A CA that did not sign the server's certificate. */
  otherCaPem: Buffer
  received: { tokenId: string; otp: string }[]
  /** TLS connections accepted so far (keep-alive shows as fewer connections than requests). */
  tlsConnections(): number
  /** Closes every open connection, as a server that restarts or times idle connections out. */
  dropConnections(): void
  setDelay(ms: number): void
  /** On: a connection that already served a request is closed when the next request on it arrives, unanswered. */
  hangUpReused(on: boolean): void
  answerRaw(answer: RawVipAnswer | null): void
  stop(): Promise<void>
}

/** VIP's ReasonCodes this server answers (see src/methods/remote/vip.ts for their sources). */
export const VIP_CODES = {
  success: ['0000', 'Success'],
  invalidOtp: ['49B5', 'Failed with an invalid OTP'],
  disabled: ['4993', 'Operation not allowed on a disabled token'],
  locked: ['4994', 'Operation not allowed on a locked token'],
  notFound: ['4E03', 'Credential ID not found'],
} as const

const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/'
const VIP_NS = 'http://www.verisign.com/2006/08/vipservice'
export const VIP_PATH = '/val/soap'

const run = promisify(execFile)

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('openssl is needed for these tests: apt-get install openssl')
    throw error
  }
}

const serial = () => `0x${randomBytes(8).toString('hex')}`

/** An EC P-256 key and a self-signed CA certificate, `<name>.key` and `<name>.pem`. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`])
  await openssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=Tessera test ${name}`, '-days', '2', '-set_serial', serial(),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', `${name}.pem`])
}

/** A key and a certificate for `name` signed by `ca`, with the extensions given (one per line). */
async function makeLeaf(dir: string, name: string, ca: string, subject: string, extensions: string): Promise<void> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`])
  await openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`])
  await writeFile(path.join(dir, `${name}.ext`), extensions)
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', serial(), '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`])
}

async function makePfx(dir: string, name: string, passphrase: string, legacy = false): Promise<Buffer> {
  const out = `${name}${legacy ? '-legacy' : ''}.p12`
  await openssl(dir, ['pkcs12', '-export', ...(legacy ? ['-legacy'] : []), '-inkey', `${name}.key`, '-in', `${name}.pem`, '-passout', `pass:${passphrase}`, '-out', out])
  return readFile(path.join(dir, out))
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** Reads a SOAP Validate request; null when it is not one. */
function readValidate(xml: string): { id: string; tokenId: string; otp: string } | null {
  const parser = new SaxesParser({ xmlns: true })
  const stack: string[] = []
  const found = { id: '', tokenId: '', otp: '' }
  let validate = false
  let text = ''
  parser.on('doctype', () => { throw new Error('DTD') })
  parser.on('opentag', (node: SaxesTagNS) => {
    const parent = stack[stack.length - 1]
    let name = '?'
    if (parent === undefined && node.local === 'Envelope' && node.uri === SOAP_NS) name = 'Envelope'
    else if (parent === 'Envelope' && node.local === 'Body' && node.uri === SOAP_NS) name = 'Body'
    else if (parent === 'Body' && node.local === 'Validate' && node.uri === VIP_NS) {
      name = 'Validate'
      validate = true
      found.id = node.attributes.Id?.value ?? ''
    } else if (parent === 'Validate' && (node.local === 'TokenId' || node.local === 'OTP') && node.uri === VIP_NS) name = node.local
    stack.push(name)
    text = ''
  })
  parser.on('text', (chunk) => { text += chunk })
  parser.on('closetag', () => {
    const name = stack.pop()
    if (name === 'TokenId') found.tokenId = text
    if (name === 'OTP') found.otp = text
  })
  try {
    parser.write(xml).close()
  } catch {
    return null
  }
  return validate ? found : null
}

function validateResponse(id: string, [code, message]: readonly [string, string]): string {
  // Other prefixes than the client's, VIP's namespace as the default one, as VIP answers.
  return '<?xml version="1.0" encoding="UTF-8"?>' +
    `<S:Envelope xmlns:S="${SOAP_NS}"><S:Body><ValidateResponse RequestId="${escapeXml(id)}" Version="2.0" xmlns="${VIP_NS}">` +
    `<Status><ReasonCode>${code}</ReasonCode><StatusMessage>${escapeXml(message)}</StatusMessage></Status></ValidateResponse></S:Body></S:Envelope>`
}

const fault = (text: string) => `<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="${SOAP_NS}"><S:Body><S:Fault>` +
  `<faultcode>S:Client</faultcode><faultstring>${escapeXml(text)}</faultstring></S:Fault></S:Body></S:Envelope>`

export async function startVipServer(t: Test, options: VipServerOptions): Promise<VipServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-vip-'))
  const clientPassphrase = 'vip-test-passphrase'
  await Promise.all([
    makeCa(dir, 'server-ca').then(() => makeLeaf(dir, 'server', 'server-ca', '/CN=localhost',
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n')),
    makeCa(dir, 'client-ca').then(() => makeLeaf(dir, 'client', 'client-ca', '/CN=Tessera VIP RA test', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n')),
    makeCa(dir, 'other-ca').then(() => makeLeaf(dir, 'stranger', 'other-ca', '/CN=Stranger', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n')),
  ])
  const [clientPfx, legacyClientPfx, strangerPfx] = await Promise.all([
    makePfx(dir, 'client', clientPassphrase), makePfx(dir, 'client', clientPassphrase, true), makePfx(dir, 'stranger', clientPassphrase),
  ])
  const file = (name: string) => readFile(path.join(dir, name))
  const [caPem, otherCaPem, serverKey, serverCert, clientCaPem] = await Promise.all([
    file('server-ca.pem'), file('other-ca.pem'), file('server.key'), file('server.pem'), file('client-ca.pem'),
  ])

  let delayMs = options.delayMs ?? 0
  let raw: RawVipAnswer | null = null
  const received: VipServer['received'] = []
  const timers = new Set<NodeJS.Timeout>()
  let hangUpReused = false
  const served = new WeakMap<object, number>()

  const server = https.createServer({
    key: serverKey, cert: serverCert, ca: clientCaPem, requestCert: true, rejectUnauthorized: true,
    minVersion: 'TLSv1.2', maxVersion: options.maxTlsVersion ?? 'TLSv1.3',
  }, (request, response) => {
    if (request.method !== 'POST') {
      response.writeHead(405, { allow: 'POST' }).end()
      return
    }
    if (request.url !== VIP_PATH) {
      response.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>Not Found</body></html>')
      return
    }
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const before = served.get(request.socket) ?? 0
      served.set(request.socket, before + 1)
      if (hangUpReused && before > 0) {
        request.socket.destroy()
        return
      }
      const asked = readValidate(Buffer.concat(chunks).toString('utf8'))
      if (asked) received.push({ tokenId: asked.tokenId, otp: asked.otp })
      const reply = () => {
        if (raw) {
          response.writeHead(raw.status ?? 200, { 'content-type': raw.contentType ?? 'text/xml; charset=utf-8' }).end(raw.body)
          return
        }
        if (!asked) {
          response.writeHead(500, { 'content-type': 'text/xml; charset=utf-8' }).end(fault('The request is not a Validate of the VIP service'))
          return
        }
        const credential = options.credentials[asked.tokenId]
        const code = !credential ? VIP_CODES.notFound
          : credential.state === 'disabled' ? VIP_CODES.disabled
          : credential.state === 'locked' ? VIP_CODES.locked
          : asked.otp === (typeof credential.code === 'function' ? credential.code() : credential.code) ? VIP_CODES.success
          : VIP_CODES.invalidOtp
        response.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(validateResponse(asked.id, code))
      }
      if (delayMs <= 0) reply()
      else {
        const timer = setTimeout(() => {
          timers.delete(timer)
          if (!response.destroyed) reply()
        }, delayMs)
        timers.add(timer)
      }
    })
  })
  let tlsConnections = 0
  server.on('secureConnection', () => { tlsConnections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as AddressInfo

  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    for (const timer of timers) clearTimeout(timer)
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  }
  t.teardown(stop)

  return {
    url: `https://127.0.0.1:${port}${VIP_PATH}`,
    caPem, clientPfx, clientPassphrase, legacyClientPfx, strangerPfx, otherCaPem, received,
    tlsConnections: () => tlsConnections,
    dropConnections: () => server.closeAllConnections(),
    setDelay: (ms) => { delayMs = ms },
    hangUpReused: (on) => { hangUpReused = on },
    answerRaw: (answer) => { raw = answer },
    stop,
  }
}
