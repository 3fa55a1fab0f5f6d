// Symantec VIP as a remote checker of codes: the VIP Web Services `Validate` call (SOAP 1.1 over HTTPS,
// our side authenticated by the client certificate VIP issues to the account, as Defender's "VIP Credential
// Configuration" takes it: a PKCS#12 file and its passphrase). One client per configured service keeps its
// connections and TLS sessions alive between validations.
// Rules enforced here:
// - TLS 1.2 or later, the server's certificate checked against the configured CA (or Node's roots).
// - The whole exchange, connect to last byte, is bounded by timeoutMs; the socket is destroyed when it runs out.
// - The answer is at most 64 KB of XML without a DTD, read with namespaces; ReasonCode is found by
//   Envelope/Body/ValidateResponse/Status whatever the prefixes.
// - Nothing the network or the server does throws: it becomes an `unavailable` answer with words for an
//   admin. The code is never in an answer, a message or an error; text from the server is scrubbed of it.
// Sources for the protocol: Broadcom TechDocs, VIP Web Services Developer's Guide, "Validate" (TokenId, OTP)
// and the VIP REST "Troubleshooting the Credential Management APIs" table (4879, 4990, 4993, 4e04);
// Broadcom KB 442778 (4E03 "Authorization failed": "Credential ID not found", "Account not found"); real
// Validate exchanges in Symantec/keymaster lib/vip (Version="2.0", namespace 2006/08/vipservice,
// ValidateResponse/Status/ReasonCode, 49B5 "Failed with an invalid OTP"); the WSDL's soapAction is ""
// (Axis stubs generated from it). 4994 (locked) is the entry after 4993 in that table and could not be
// read in full: treat it as likely, not documented.
import https from 'node:https'
import tls from 'node:tls'
import { randomBytes, X509Certificate } from 'node:crypto'
import { SaxesParser, type SaxesTagNS } from 'saxes'
import type { RejectReason, RemoteAnswer } from './answer.js'

export interface VipOptions {
  /** https://… the Validate endpoint (VIP's is https://vipservices-auth.verisign.com/val/soap). */
  url: string
  /** Our client certificate and key, PKCS#12. */
  pfx: Buffer
  passphrase: string
  /** PEM of the CA trusted for the server; null: Node's default roots. */
  ca: Buffer | null
  timeoutMs: number
}

export type VipConnectionResult = { ok: true; message: string } | { ok: false; reason: string; message: string }

export interface VipClient {
  validate(credentialId: string, code: string): Promise<RemoteAnswer>
  /** A Validate for a credential that cannot exist: any well-formed VIP answer means we are connected. */
  testConnection(): Promise<VipConnectionResult>
  /** Closes the kept-alive connections; the client cannot be used afterwards. */
  close(): void
}

const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/'
/** The Validate namespace: VeriSign's, and the one later Symantec WSDLs use. */
const VIP_NS = 'http://www.verisign.com/2006/08/vipservice'
const VIP_NAMESPACES = new Set([VIP_NS, 'https://schemas.vip.symantec.com/2006/08/vipservice'])
const MAX_BODY = 64 * 1024
/** ValidateResponse/Status/ReasonCode sits at depth 5: anything much deeper is not a VIP answer. */
const MAX_DEPTH = 24
const MAX_TEXT = 4096
const CREDENTIAL_ID = /^[A-Za-z0-9-]{4,64}$/
const CODE = /^\d{6,8}$/
const TEST_CREDENTIAL = 'TESSERA-TEST-0000'
const TEST_CODE = '000000'

/**
 * What each ReasonCode means (compared upper-case: VIP writes both "49B5" and "4e04"). 'service': VIP
 * could not judge the code (busy, internal error, our protocol version), so the user is not refused for it.
 * Any other code is a refusal, 'other'.
 */
const REASON_CODES: Record<string, 'accept' | RejectReason | 'service' | undefined> = {
  '0000': 'accept',
  '49B5': 'wrong-code', // Failed with an invalid OTP
  '4993': 'disabled', // Operation not allowed on a disabled token
  '4994': 'locked', // (see the sources above)
  '4E03': 'unknown-credential', // Authorization failed: credential ID not found, or not issued by this account
  '4879': 'service', // The service is temporarily unavailable
  '4E01': 'service', // Service internal error
  '4E04': 'service', // Unsupported service protocol version
}

/** Why we do not trust the server's certificate, by Node's (OpenSSL's) verification code. */
const UNTRUSTED: Record<string, string | undefined> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'it is not signed by a CA we trust',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its issuer is not a CA we trust',
  UNABLE_TO_GET_ISSUER_CERT: 'its issuer is not a CA we trust',
  SELF_SIGNED_CERT_IN_CHAIN: 'its chain ends in a CA we do not trust',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed',
  CERT_HAS_EXPIRED: 'it has expired',
  CERT_NOT_YET_VALID: 'it is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'it is not issued for this host name',
  HOSTNAME_MISMATCH: 'it is not issued for this host name',
  CERT_SIGNATURE_FAILURE: 'its signature does not verify',
  CERT_REVOKED: 'it has been revoked',
  CERT_UNTRUSTED: 'it is not trusted for this use',
  INVALID_PURPOSE: 'it is not meant for a TLS server',
  INVALID_CA: 'a certificate in its chain is not a valid CA',
  CERT_CHAIN_TOO_LONG: 'its chain is too long',
}

/** TLS alerts a server sends when it does not accept our certificate (OpenSSL's words, as in error messages). */
const CLIENT_REFUSED_ALERTS = /alert (certificate required|bad certificate|unknown ca|certificate expired|certificate revoked|certificate unknown|unsupported certificate|access denied)/i
const CLIENT_REFUSED = 'The VIP service refused our client certificate. Check that the PKCS#12 file is the one VIP issued for this account and has not expired.'

/**
 * Checks a service's options before a client is made from them; throws an Error naming the field.
 * The passphrase is never in a message.
 */
export function checkVipOptions(options: VipOptions): void {
  let url: URL
  try {
    url = new URL(options.url)
  } catch {
    throw new Error('VIP url: not a URL')
  }
  if (url.protocol !== 'https:') throw new Error(`VIP url: must start with https:// (not ${url.protocol}//)`)
  if (url.username !== '' || url.password !== '') throw new Error('VIP url: must not hold a user name or password (VIP authenticates us by our certificate)')

  if (!Buffer.isBuffer(options.pfx) || options.pfx.length === 0) throw new Error('VIP pfx: the PKCS#12 file is empty')
  try {
    tls.createSecureContext({ pfx: options.pfx, passphrase: options.passphrase })
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    if (e.code === 'ERR_CRYPTO_UNSUPPORTED_OPERATION') {
      // OpenSSL 3 reads RC2/40-bit PKCS#12 only with its legacy provider, which Node does not load.
      throw new Error('VIP pfx: the PKCS#12 file uses an old encryption (RC2) that OpenSSL 3 no longer reads; re-export it: openssl pkcs12 -legacy -in old.p12 -nodes -out both.pem, then openssl pkcs12 -export -in both.pem -out new.p12')
    }
    if (/mac verify failure/i.test(e.message)) throw new Error('VIP passphrase: the PKCS#12 file cannot be opened with this passphrase')
    if (/private key/i.test(e.message)) throw new Error('VIP pfx: the PKCS#12 file holds no private key (export it with the key)')
    throw new Error(`VIP pfx: not a PKCS#12 file that can be opened (${e.message.slice(0, 100)})`)
  }

  if (options.ca !== null) {
    if (!Buffer.isBuffer(options.ca)) throw new Error('VIP ca: must be PEM or null')
    const blocks = options.ca.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
    if (blocks.length === 0) throw new Error('VIP ca: not a PEM certificate (no -----BEGIN CERTIFICATE----- block)')
    for (const [i, block] of blocks.entries()) {
      try {
        new X509Certificate(block)
      } catch {
        throw new Error(`VIP ca: certificate ${i + 1} of the PEM cannot be read`)
      }
    }
  }

  if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1000 || options.timeoutMs > 30_000) {
    throw new Error('VIP timeoutMs: must be a whole number of milliseconds from 1000 to 30000 (1 to 30 s)')
  }
}

/** A client for one configured VIP service; throws (checkVipOptions) when its options cannot work. */
export function createVipClient(options: VipOptions): VipClient {
  checkVipOptions(options)
  const url = new URL(options.url)
  // keepAlive reuses connections; the agent's session cache resumes TLS on new ones.
  const agent = new https.Agent({
    keepAlive: true, pfx: options.pfx, passphrase: options.passphrase, ca: options.ca ?? undefined,
    rejectUnauthorized: true, minVersion: 'TLSv1.2',
  })
  let closed = false

  const run = async (credentialId: string, code: string): Promise<Checked> => {
    if (closed) throw new Error('this VIP client is closed')
    if (!CREDENTIAL_ID.test(credentialId)) throw new Error('VIP credential id: 4 to 64 letters, digits or dashes expected')
    if (!CODE.test(code)) throw new Error('VIP code: 6 to 8 digits expected')
    const requestId = randomBytes(8).toString('hex').toUpperCase()
    try {
      const outcome = await post(agent, url, validateRequest(requestId, credentialId, code), options.timeoutMs)
      if (outcome.kind === 'failed') return { answer: unavailable(outcome.reason, outcome.message), statusMessage: '' }
      return interpret(outcome.status, outcome.body, requestId, code)
    } catch (error) {
      // A bug of ours, not the service's doing: still an answer, never the code.
      return { answer: unavailable('internal-error', `The VIP check failed inside the gateway (${scrub((error as Error).message, code)}).`), statusMessage: '' }
    }
  }

  return {
    validate: async (credentialId, code) => (await run(credentialId, code)).answer,
    testConnection: async () => {
      const { answer, statusMessage } = await run(TEST_CREDENTIAL, TEST_CODE)
      if (answer.result === 'unavailable') return { ok: false, reason: answer.reason, message: answer.message }
      return { ok: true, message: `Connected: the VIP service answered (ReasonCode ${answer.reason}${statusMessage === '' ? '' : `: ${statusMessage}`}).` }
    },
    close: () => {
      closed = true
      agent.destroy()
    },
  }
}

/** One validation with a client made and closed for it; a gateway keeps a client per service instead. */
export async function vipValidate(options: VipOptions, credentialId: string, code: string): Promise<RemoteAnswer> {
  const client = createVipClient(options)
  try {
    return await client.validate(credentialId, code)
  } finally {
    client.close()
  }
}

export async function vipTestConnection(options: VipOptions): Promise<VipConnectionResult> {
  const client = createVipClient(options)
  try {
    return await client.testConnection()
  } finally {
    client.close()
  }
}

interface Checked {
  answer: RemoteAnswer
  /** VIP's StatusMessage, scrubbed: shown by Test connection only. */
  statusMessage: string
}

const unavailable = (reason: string, message: string): RemoteAnswer => ({ result: 'unavailable', reason, message })

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)

function validateRequest(requestId: string, credentialId: string, code: string): Buffer {
  return Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>' +
      `<soapenv:Envelope xmlns:soapenv="${SOAP_NS}" xmlns:vip="${VIP_NS}"><soapenv:Body>` +
      `<vip:Validate Version="2.0" Id="${escapeXml(requestId)}"><vip:TokenId>${escapeXml(credentialId)}</vip:TokenId><vip:OTP>${escapeXml(code)}</vip:OTP></vip:Validate>` +
      '</soapenv:Body></soapenv:Envelope>',
    'utf8',
  )
}

type Outcome = { kind: 'http'; status: number; body: Buffer } | { kind: 'failed'; reason: string; message: string } | { kind: 'stale' }

/** POSTs the request; a kept-alive connection the server had closed meanwhile is retried once on a new one. */
async function post(agent: https.Agent, url: URL, body: Buffer, timeoutMs: number): Promise<Exclude<Outcome, { kind: 'stale' }>> {
  const deadline = Date.now() + timeoutMs
  const first = await exchange(agent, url, body, timeoutMs, timeoutMs)
  if (first.kind !== 'stale') return first
  // Node's documented pattern (request.reusedSocket). Idle sockets to this server are likely all closed.
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy()
  const left = deadline - Date.now()
  if (left <= 0) return timedOut(timeoutMs)
  const second = await exchange(agent, url, body, left, timeoutMs)
  return second.kind === 'stale' ? { kind: 'failed', reason: 'unreachable', message: 'The VIP service closed the connection before answering.' } : second
}

const timedOut = (timeoutMs: number): Outcome & { kind: 'failed' } =>
  ({ kind: 'failed', reason: 'timeout', message: `The VIP service did not answer within ${timeoutMs / 1000} s.` })

/** One POST, given `waitMs` for all of it; `timeoutMs` is the configured timeout, for the words. */
function exchange(agent: https.Agent, url: URL, body: Buffer, waitMs: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false
    /** How far the connection got: a reset during or right after the handshake is the server refusing us. */
    let reached: 'none' | 'tcp' | 'tls' = 'none'
    let answering = false
    const finish = (outcome: Outcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(outcome)
    }
    const request = https.request(url, {
      method: 'POST', agent,
      headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: '""', accept: 'text/xml', 'content-length': body.length },
    }, (response) => {
      answering = true
      const declared = Number(response.headers['content-length'])
      if (declared > MAX_BODY) {
        finish(tooLarge())
        request.destroy()
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY) {
          finish(tooLarge())
          request.destroy()
        } else chunks.push(chunk)
      })
      response.on('end', () => finish({ kind: 'http', status: response.statusCode ?? 0, body: Buffer.concat(chunks) }))
      response.on('error', () => finish(cutOff()))
      response.on('close', () => { if (!response.complete) finish(cutOff()) })
    })
    // One timer for the whole exchange, destroying the socket when it fires.
    const timer = setTimeout(() => {
      finish(timedOut(timeoutMs))
      request.destroy()
    }, waitMs)
    request.on('socket', (socket) => {
      if (request.reusedSocket) reached = 'tls'
      else {
        socket.once('connect', () => { if (reached === 'none') reached = 'tcp' })
        socket.once('secureConnect', () => { reached = 'tls' })
      }
    })
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (answering) finish(cutOff())
      else finish(networkFailure(error, url, request.reusedSocket, reached))
    })
    request.end(body)
  })
}

const cutOff = (): Outcome => ({ kind: 'failed', reason: 'bad-answer', message: 'The VIP service closed the connection in the middle of its answer.' })
const tooLarge = (): Outcome => ({ kind: 'failed', reason: 'bad-answer', message: `The VIP service's answer is larger than ${MAX_BODY / 1024} KB: refused.` })

function networkFailure(error: NodeJS.ErrnoException, url: URL, reused: boolean, reached: 'none' | 'tcp' | 'tls'): Outcome {
  const code = error.code ?? ''
  const where = `${url.hostname}:${url.port || '443'}`
  const untrusted = UNTRUSTED[code]
  if (untrusted !== undefined) {
    const words = code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH' ? `it is not issued for ${url.hostname}` : untrusted
    return { kind: 'failed', reason: 'tls-server-untrusted', message: `We don't trust the VIP service's certificate (${words}). Check the CA certificate and the URL.` }
  }
  // Alerts arrive as ERR_SSL_..._ALERT_... codes, or as EPROTO with OpenSSL's words in the message.
  if (CLIENT_REFUSED_ALERTS.test(code.replace(/^ERR_SSL_(SSLV3|TLSV1|TLSV13)_/, '').replace(/_/g, ' ')) || (code === 'EPROTO' && CLIENT_REFUSED_ALERTS.test(error.message))) {
    return { kind: 'failed', reason: 'tls-client-refused', message: CLIENT_REFUSED }
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    if (reused) return { kind: 'stale' }
    // No alert, just a closed connection: what servers that check the certificate after the handshake do
    // (Node's own, with TLS 1.3 after it, with TLS 1.2 during it).
    if (reached !== 'none') return { kind: 'failed', reason: 'tls-client-refused', message: `${CLIENT_REFUSED} (It closed the connection ${reached === 'tls' ? 'right after' : 'during'} the TLS handshake.)` }
    return { kind: 'failed', reason: 'unreachable', message: `The connection to the VIP service at ${where} was reset.` }
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
    return { kind: 'failed', reason: 'unreachable', message: `The VIP service's host name ${url.hostname} was not found (DNS). Check the URL.` }
  }
  if (code === 'ECONNREFUSED') return { kind: 'failed', reason: 'unreachable', message: `Nothing answers at ${where} (connection refused). Check the URL.` }
  if (['EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL'].includes(code)) {
    return { kind: 'failed', reason: 'unreachable', message: `The VIP service at ${where} cannot be reached from here (${code}).` }
  }
  if (/wrong version number|packet length too long|http request/i.test(error.message)) {
    return { kind: 'failed', reason: 'tls-failed', message: `The server at ${where} does not speak HTTPS. Check the URL.` }
  }
  if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_')) {
    const alert = /alert ([a-z ]+)/i.exec(error.message)?.[1] ?? code
    return { kind: 'failed', reason: 'tls-failed', message: `The TLS handshake with the VIP service failed (${alert}).` }
  }
  return { kind: 'failed', reason: 'unreachable', message: `Could not reach the VIP service at ${where} (${code || error.message.slice(0, 80)}).` }
}

/** Turns an HTTP answer into the gateway's words. */
function interpret(status: number, body: Buffer, requestId: string, code: string): Checked {
  const none = (reason: string, message: string): Checked => ({ answer: unavailable(reason, message), statusMessage: '' })
  if (status === 404) return none('wrong-url', 'The VIP service answered 404 at this URL: check the URL.')
  let soap: SoapAnswer | null = null
  let badXml = ''
  try {
    soap = readSoap(body.toString('utf8').replace(/^\uFEFF/, ''))
  } catch (error) {
    badXml = error instanceof BadXml ? error.message : 'it is not well-formed XML'
  }
  if (soap?.fault) {
    const words = scrub(soap.fault.text, code) || 'no reason given'
    return none('soap-fault', `The VIP service answered with a SOAP fault: ${words}${soap.fault.code === '' ? '' : ` (${scrub(soap.fault.code, code)})`}.`)
  }
  if (status !== 200) return none(`http-${status}`, `The VIP service answered HTTP ${status}${status >= 500 ? ' (a server error)' : ''} at this URL.`)
  if (soap === null) return none('bad-answer', `The VIP service's answer cannot be used: ${badXml}.`)
  if (soap.reasonCode === null) return none('bad-answer', "The VIP service's answer has no ValidateResponse/Status/ReasonCode.")
  // VIP's ReasonCodes are four hexadecimal digits; anything else (the code echoed back, say) never reaches an event.
  if (!/^[0-9A-Fa-f]{4}$/.test(soap.reasonCode) || soap.reasonCode === code) return none('bad-answer', `The VIP service's ReasonCode is not four hexadecimal digits (${scrub(soap.reasonCode, code).slice(0, 20)}).`)
  if (soap.requestId !== null && soap.requestId !== requestId) return none('bad-answer', "The VIP service's answer is for another request (its RequestId is not ours).")

  const reason = soap.reasonCode
  const statusMessage = scrub(soap.statusMessage, code)
  const meaning = REASON_CODES[reason.toUpperCase()] ?? 'other'
  if (meaning === 'accept') return { answer: { result: 'accept', reason }, statusMessage }
  if (meaning === 'service') {
    return { answer: unavailable('service-error', `The VIP service could not check the code (ReasonCode ${reason}${statusMessage === '' ? '' : `: ${statusMessage}`}).`), statusMessage }
  }
  return { answer: { result: 'reject', reason, why: meaning }, statusMessage }
}

/** Server text made safe to show and log: no control characters, never the code or anything like one, short. */
function scrub(text: string, code: string): string {
  return text.split(code).join('…').replace(/\d{6,}/g, '…').replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200)
}

class BadXml extends Error {}

interface SoapAnswer {
  fault: { code: string; text: string } | null
  reasonCode: string | null
  statusMessage: string
  requestId: string | null
}

/** Reads a SOAP 1.1 answer: a Fault, or ValidateResponse/Status's ReasonCode and StatusMessage. Throws BadXml. */
function readSoap(xml: string): SoapAnswer {
  const parser = new SaxesParser({ xmlns: true })
  const answer: SoapAnswer = { fault: null, reasonCode: null, statusMessage: '', requestId: null }
  /** Each open element as this reader knows it ('?' for any other), to place the next one. */
  const stack: string[] = []
  let vipNs = ''
  let capture: 'ReasonCode' | 'StatusMessage' | 'faultcode' | 'faultstring' | null = null
  let text = ''
  const stop = (message: string): never => {
    throw new BadXml(message)
  }

  parser.on('doctype', () => stop('it has a DTD (<!DOCTYPE ...>), which is refused'))
  parser.on('opentag', (node: SaxesTagNS) => {
    if (stack.length >= MAX_DEPTH) stop(`its elements are nested more than ${MAX_DEPTH} deep`)
    // A value is text only: an element inside one would reset what was read of it.
    if (capture !== null) stop(`its ${capture} holds an element`)
    const parent = stack[stack.length - 1]
    let name = '?'
    if (parent === undefined) {
      if (node.local !== 'Envelope' || node.uri !== SOAP_NS) stop('it is not a SOAP 1.1 envelope')
      name = 'Envelope'
    } else if (parent === 'Envelope' && node.local === 'Body' && node.uri === SOAP_NS) name = 'Body'
    else if (parent === 'Body' && node.local === 'Fault' && node.uri === SOAP_NS) {
      name = 'Fault'
      answer.fault = { code: '', text: '' }
    } else if (parent === 'Body' && node.local === 'ValidateResponse' && VIP_NAMESPACES.has(node.uri)) {
      name = 'ValidateResponse'
      vipNs = node.uri
      answer.requestId = node.attributes.RequestId?.value ?? null
    } else if (parent === 'ValidateResponse' && node.local === 'Status' && (node.uri === vipNs || node.uri === '')) name = 'Status'
    else if (parent === 'Status' && (node.local === 'ReasonCode' || node.local === 'StatusMessage') && (node.uri === vipNs || node.uri === '')) {
      if (node.local === 'ReasonCode' && answer.reasonCode !== null) stop('it has two ReasonCodes')
      name = capture = node.local as 'ReasonCode' | 'StatusMessage'
    } else if (parent === 'Fault' && (node.local === 'faultcode' || node.local === 'faultstring') && (node.uri === '' || node.uri === SOAP_NS)) {
      name = capture = node.local as 'faultcode' | 'faultstring'
    }
    stack.push(name)
    text = ''
  })
  const onText = (chunk: string) => {
    if (capture === null) return
    text += chunk
    if (text.length > MAX_TEXT) stop(`its ${capture} is longer than ${MAX_TEXT} characters`)
  }
  parser.on('text', onText)
  parser.on('cdata', onText)
  parser.on('closetag', () => {
    const name = stack.pop()
    if (capture !== null && name === capture) {
      const value = text.trim()
      if (name === 'ReasonCode') answer.reasonCode = value
      else if (name === 'StatusMessage') answer.statusMessage = value
      else if (name === 'faultcode' && answer.fault) answer.fault.code = value
      else if (name === 'faultstring' && answer.fault) answer.fault.text = value
      capture = null
    }
  })
  try {
    parser.write(xml).close()
  } catch (error) {
    if (error instanceof BadXml) throw error
    // saxes: "line:column: message"; the position says enough, the message may quote the input.
    const where = /^(\d+):(\d+):/.exec((error as Error).message)
    throw new BadXml(`it is not well-formed XML${where ? ` (line ${where[1]}, column ${where[2]})` : ''}`)
  }
  return answer
}
