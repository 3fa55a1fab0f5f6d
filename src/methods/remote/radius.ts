// Validates a code against a RADIUS server: one PAP Access-Request (RFC 2865) per code, with failover
// over the configured servers. Our own small codec rather than the `radius` package (1.1.4): that one
// appends Message-Authenticator last, compares authenticators as strings, re-encodes answers to check
// them and uses the deprecated `new Buffer`. Blast-RADIUS (CVE-2024-3596) rules applied here:
// Message-Authenticator first in every request, and required and checked on every answer.
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { lookup } from 'node:dns/promises'
import type { RemoteAnswer } from './answer.js'

export interface RadiusServer { host: string; port: number; secret: string }

export interface RadiusOptions {
  /** Tried in this order; the next one only when a server is down, silent or its answers fail their check. */
  servers: readonly RadiusServer[]
  /** How long to wait for an answer to each attempt. FreeRADIUS delays an Access-Reject by `reject_delay` (1 s by default). */
  timeoutMs: number
  /** Extra attempts per server (the same packet sent again) before the next server. */
  retries: number
  /** The NAS-Identifier attribute (RFC 2865 §5.32), by which the server knows us apart from other clients. */
  nasIdentifier: string
}

export const PacketCode = { AccessRequest: 1, AccessAccept: 2, AccessReject: 3, AccessChallenge: 11 } as const
export const AttributeType = { UserName: 1, UserPassword: 2, NasIdentifier: 32, MessageAuthenticator: 80 } as const

const HEADER = 20
const AUTHENTICATOR = 16
const MAX_PACKET = 4096 // RFC 2865 §3

export interface RadiusAttribute {
  type: number
  value: Buffer
  /** Where the value starts in the packet. */
  offset: number
}

export interface RadiusPacket {
  code: number
  identifier: number
  authenticator: Buffer
  attributes: RadiusAttribute[]
  /** The packet's bytes up to its Length field (anything after it is padding, RFC 2865 §3). */
  bytes: Buffer
}

/**
 * User-Password hidden as RFC 2865 §5.2 says: padded with NULs to a multiple of 16, then each 16-byte
 * block XORed with MD5(secret + the previous hidden block), the first with MD5(secret + Request Authenticator).
 */
export function hidePassword(password: Buffer, secret: Buffer, requestAuthenticator: Buffer): Buffer {
  if (password.length < 1 || password.length > 128) throw new RangeError('a RADIUS User-Password is 1 to 128 bytes (RFC 2865 §5.2)')
  if (requestAuthenticator.length !== AUTHENTICATOR) throw new RangeError('the Request Authenticator is 16 bytes')
  const hidden = Buffer.alloc(Math.ceil(password.length / 16) * 16)
  password.copy(hidden)
  let previous = requestAuthenticator
  for (let at = 0; at < hidden.length; at += 16) {
    const mask = crypto.createHash('md5').update(secret).update(previous).digest()
    for (let i = 0; i < 16; i++) hidden[at + i]! ^= mask[i]!
    previous = hidden.subarray(at, at + 16)
  }
  return hidden
}

export interface AccessRequestFields {
  identifier: number
  /** 16 random bytes (RFC 2865 §3: unpredictable and unique over the life of the secret). */
  authenticator: Buffer
  user: Buffer
  password: Buffer
  nasIdentifier: Buffer
  secret: Buffer
}

/** An Access-Request: Message-Authenticator (RFC 3579 §3.2) first, then User-Name, User-Password and NAS-Identifier. */
export function encodeAccessRequest(fields: AccessRequestFields): Buffer {
  if (!Number.isInteger(fields.identifier) || fields.identifier < 0 || fields.identifier > 255) throw new RangeError('the identifier is one byte')
  if (fields.secret.length === 0) throw new RangeError('the shared secret is empty')
  const attributes = [
    attribute(AttributeType.MessageAuthenticator, Buffer.alloc(16)),
    attribute(AttributeType.UserName, fields.user),
    attribute(AttributeType.UserPassword, hidePassword(fields.password, fields.secret, fields.authenticator)),
    attribute(AttributeType.NasIdentifier, fields.nasIdentifier),
  ]
  const header = Buffer.alloc(HEADER)
  header.writeUInt8(PacketCode.AccessRequest, 0)
  header.writeUInt8(fields.identifier, 1)
  fields.authenticator.copy(header, 4)
  const packet = Buffer.concat([header, ...attributes])
  packet.writeUInt16BE(packet.length, 2)
  // The Message-Authenticator value starts right after the header and its own type and length bytes.
  crypto.createHmac('md5', fields.secret).update(packet).digest().copy(packet, HEADER + 2)
  return packet
}

function attribute(type: number, value: Buffer): Buffer {
  if (value.length < 1 || value.length > 253) throw new RangeError(`RADIUS attribute ${type} must be 1 to 253 bytes`)
  return Buffer.concat([Buffer.from([type, value.length + 2]), value])
}

/** The packet in `bytes`, or undefined if it is not a well-formed RADIUS packet (RFC 2865 §3, §5). */
export function decodePacket(bytes: Buffer): RadiusPacket | undefined {
  if (bytes.length < HEADER) return undefined
  const length = bytes.readUInt16BE(2)
  if (length < HEADER || length > MAX_PACKET || length > bytes.length) return undefined
  const attributes: RadiusAttribute[] = []
  for (let at = HEADER; at < length;) {
    if (at + 2 > length) return undefined
    const size = bytes[at + 1]!
    if (size < 2 || at + size > length) return undefined
    attributes.push({ type: bytes[at]!, value: bytes.subarray(at + 2, at + size), offset: at + 2 })
    at += size
  }
  return {
    code: bytes[0]!, identifier: bytes[1]!, authenticator: bytes.subarray(4, HEADER), attributes, bytes: bytes.subarray(0, length),
  }
}

export type AnswerCheck = 'ok' | 'bad-authenticator' | 'no-message-authenticator'

/**
 * Whether an answer really comes from a server that knows the secret and belongs to our request:
 * - the Response Authenticator is MD5(Code + Identifier + Length + Request Authenticator + Attributes + secret) (RFC 2865 §3);
 * - exactly one Message-Authenticator, HMAC-MD5 keyed with the secret over the answer with the Request
 *   Authenticator in place of its own and the attribute's value zeroed (RFC 3579 §3.2). Required even on
 *   Access-Reject: without it a forged answer is within reach of an MD5 collision (Blast-RADIUS).
 */
export function checkAnswer(answer: RadiusPacket, requestAuthenticator: Buffer, secret: Buffer): AnswerCheck {
  const signed = Buffer.from(answer.bytes)
  requestAuthenticator.copy(signed, 4)
  const expected = crypto.createHash('md5').update(signed).update(secret).digest()
  if (!crypto.timingSafeEqual(expected, answer.authenticator)) return 'bad-authenticator'
  const found = answer.attributes.filter((a) => a.type === AttributeType.MessageAuthenticator)
  if (found.length === 0) return 'no-message-authenticator'
  const [ma] = found
  if (found.length > 1 || ma!.value.length !== 16) return 'bad-authenticator'
  signed.fill(0, ma!.offset, ma!.offset + 16)
  const hmac = crypto.createHmac('md5', secret).update(signed).digest()
  return crypto.timingSafeEqual(hmac, ma!.value) ? 'ok' : 'bad-authenticator'
}

type Discarded = Exclude<AnswerCheck, 'ok'> | 'malformed-answer' | 'unexpected-answer'

type ServerOutcome =
  | { kind: 'answer'; answer: RemoteAnswer }
  /** No usable answer. discarded: why the last answer that did arrive was not used. */
  | { kind: 'silent' | 'refused' | 'unreachable'; discarded?: Discarded; detail?: string }

/**
 * The server's verdict on `code` for `user`. Tries each server in turn, `retries` extra times each, and
 * never throws for anything the network or a server did; it throws only for arguments no server could
 * accept. The code is in no answer, error or log.
 */
export async function radiusValidate(options: RadiusOptions, user: string, code: string): Promise<RemoteAnswer & { server?: string }> {
  checkArguments(options, user, code)
  const request = { user: Buffer.from(user, 'utf8'), password: Buffer.from(code, 'utf8'), nasIdentifier: Buffer.from(options.nasIdentifier, 'utf8') }
  const link = new Link()
  const tried: { where: string; outcome: Exclude<ServerOutcome, { kind: 'answer' }> }[] = []
  try {
    for (const server of options.servers) {
      const outcome = await ask(link, server, request, options)
      if (outcome.kind === 'answer') return { ...outcome.answer, server: where(server) }
      tried.push({ where: where(server), outcome })
    }
  } finally {
    link.close()
  }
  return explain(tried, (options.retries + 1) * options.timeoutMs)
}

function checkArguments(options: RadiusOptions, user: string, code: string): void {
  const bytes = (s: string) => Buffer.byteLength(s, 'utf8')
  if (typeof user !== 'string' || bytes(user) < 1 || bytes(user) > 253) throw new TypeError('radiusValidate: the user name must be 1 to 253 bytes (RFC 2865 §5.1)')
  if (typeof code !== 'string' || bytes(code) < 1 || bytes(code) > 128) throw new TypeError('radiusValidate: the code must be 1 to 128 bytes (RFC 2865 §5.2)')
  // PAP pads the password with NULs, so a NUL in it would not reach the server as typed.
  if (user.includes('\0') || code.includes('\0')) throw new TypeError('radiusValidate: the user name and the code must not contain NUL')
  if (bytes(options.nasIdentifier ?? '') < 1 || bytes(options.nasIdentifier) > 253) throw new TypeError('radiusValidate: nasIdentifier must be 1 to 253 bytes')
  if (!options.servers?.length) throw new TypeError('radiusValidate: servers must name at least one RADIUS server')
  for (const server of options.servers) {
    if (!server.host) throw new TypeError('radiusValidate: a server has no host')
    if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535) throw new TypeError(`radiusValidate: the port of ${server.host} is not a port number`)
    if (!server.secret) throw new TypeError(`radiusValidate: the shared secret of ${where(server)} is empty`)
  }
  if (!(options.timeoutMs > 0)) throw new TypeError('radiusValidate: timeoutMs must be positive')
  if (!Number.isInteger(options.retries) || options.retries < 0) throw new TypeError('radiusValidate: retries must be a whole number, 0 or more')
}

/**
 * The one UDP socket of a call, connected to the server being asked: the kernel then drops datagrams from
 * anyone else and reports an ICMP port unreachable as ECONNREFUSED. A socket only changes when a server
 * of the other address family comes next.
 */
class Link {
  private socket: dgram.Socket | undefined
  private family: 4 | 6 | undefined

  async connect(address: string, family: 4 | 6, port: number): Promise<dgram.Socket> {
    if (this.socket && this.family !== family) this.close()
    if (!this.socket) {
      this.socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4')
      this.family = family
      // Errors between attempts (a late ICMP) must not become uncaught exceptions; ask() listens for its own.
      this.socket.on('error', () => {})
    } else {
      try { this.socket.disconnect() } catch { /* the last connect failed: not connected */ }
    }
    const socket = this.socket
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => reject(error)
      socket.once('error', failed)
      socket.connect(port, address, () => { socket.off('error', failed); resolve() })
    })
    return socket
  }

  close(): void {
    try { this.socket?.close() } catch { /* already closed */ }
    this.socket = undefined
  }
}

async function ask(link: Link, server: RadiusServer, request: { user: Buffer; password: Buffer; nasIdentifier: Buffer }, options: RadiusOptions): Promise<ServerOutcome> {
  let address: { address: string; family: number }
  let socket: dgram.Socket
  try {
    address = await lookup(server.host)
    socket = await link.connect(address.address, address.family === 6 ? 6 : 4, server.port)
  } catch (error) {
    return { kind: 'unreachable', detail: (error as NodeJS.ErrnoException).code ?? 'error' }
  }
  const secret = Buffer.from(server.secret, 'utf8')
  // A new identifier and authenticator per server: the attributes change with the secret (RFC 2865 §3).
  const identifier = crypto.randomInt(256)
  const authenticator = crypto.randomBytes(AUTHENTICATOR)
  const packet = encodeAccessRequest({ identifier, authenticator, secret, ...request })

  return new Promise<ServerOutcome>((resolve) => {
    let attempts = 0
    let discarded: Discarded | undefined
    let timer: NodeJS.Timeout | undefined
    const finish = (outcome: ServerOutcome) => {
      clearTimeout(timer)
      socket.off('message', onMessage)
      socket.off('error', onError)
      resolve(outcome)
    }
    const onMessage = (bytes: Buffer, from: dgram.RemoteInfo) => {
      if (from.address !== address.address || from.port !== server.port) return
      const answer = decodePacket(bytes)
      if (!answer) { discarded = 'malformed-answer'; return }
      if (answer.identifier !== identifier) return
      const check = checkAnswer(answer, authenticator, secret)
      if (check !== 'ok') { discarded = check; return }
      switch (answer.code) {
        case PacketCode.AccessAccept: return finish({ kind: 'answer', answer: { result: 'accept', reason: 'Access-Accept' } })
        case PacketCode.AccessReject: return finish({ kind: 'answer', answer: { result: 'reject', reason: 'Access-Reject', why: 'wrong-code' } })
        // We do not do challenge-response: a challenge (a next-code or new-PIN mode) is a refusal here.
        case PacketCode.AccessChallenge: return finish({ kind: 'answer', answer: { result: 'reject', reason: 'Access-Challenge', why: 'other' } })
        default: discarded = 'unexpected-answer'
      }
    }
    const onError = (error: NodeJS.ErrnoException) =>
      finish({ kind: error.code === 'ECONNREFUSED' ? 'refused' : 'unreachable', discarded, detail: error.code ?? 'error' })
    const send = () => {
      attempts++
      // Retransmissions are the same packet, so the server can recognise a duplicate (RFC 5080 §2.2.1).
      socket.send(packet, (error) => { if (error) onError(error) })
      timer = setTimeout(() => (attempts <= options.retries ? send() : finish({ kind: 'silent', discarded })), options.timeoutMs)
    }
    socket.on('message', onMessage)
    socket.on('error', onError)
    send()
  })
}

function where(server: { host: string; port: number }): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`
}

const DISCARDED: Record<Discarded, (where: string) => string> = {
  'bad-authenticator': (w) => `The RADIUS server's answer failed its check (${w}): is the shared secret right?`,
  'no-message-authenticator': (w) => `The RADIUS server answered without a Message-Authenticator (${w}); Tessera requires one (Blast-RADIUS, CVE-2024-3596).`,
  'malformed-answer': (w) => `The RADIUS server sent something that is not a RADIUS packet (${w}).`,
  'unexpected-answer': (w) => `The RADIUS server answered with neither Access-Accept, Access-Reject nor Access-Challenge (${w}).`,
}

/** Nothing usable from any server: the most telling reason first (an answer that failed its check, then silence). */
function explain(tried: { where: string; outcome: Exclude<ServerOutcome, { kind: 'answer' }> }[], perServerMs: number): RemoteAnswer & { server?: string } {
  const bad = tried.find((t) => t.outcome.discarded)
  if (bad) return { result: 'unavailable', reason: bad.outcome.discarded!, message: DISCARDED[bad.outcome.discarded!](bad.where), server: bad.where }
  const down = tried.filter((t) => t.outcome.kind !== 'silent')
    .map((t) => (t.outcome.kind === 'refused' ? `${t.where} refused (nothing listens on that port)` : `${t.where} could not be reached (${t.outcome.detail})`))
  if (down.length === tried.length) {
    const reason = tried.some((t) => t.outcome.kind === 'refused') ? 'connection-refused' : 'unreachable'
    return { result: 'unavailable', reason, message: `No RADIUS server could be reached: ${down.join('; ')}.` }
  }
  const seconds = Number((perServerMs / 1000).toFixed(1))
  return {
    result: 'unavailable',
    reason: 'timeout',
    message: `No RADIUS server answered within ${seconds} s.${down.length ? ` (${down.join('; ')}.)` : ''}`
      + ' Check the address, the port and the shared secret: a server drops a request signed with another secret without answering.',
  }
}
