// The RADIUS client against a real FreeRADIUS 3 on loopback, and against tiny UDP responders for what
// FreeRADIUS will not do (answers signed with another secret, without Message-Authenticator, silence).
// The responders and the checks of what we send use node:crypto directly, never the codec under test.
import t from 'tap'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import type { Test } from 'tap'
import { decodePacket, hidePassword, radiusValidate, type RadiusOptions, type RadiusServer } from '../../../src/methods/remote/radius.js'
import { startFreeRadius } from '../../helpers/freeradius.js'

const SECRET = 'testing-Tessera-123'
const SIX = '492039'
const TWENTY = '12345678901234567890'
const radius = await startFreeRadius(t, { users: { alice: SIX, bob: TWENTY, 'zoë o"neil': '111111' }, secret: SECRET })
const freeradius: RadiusServer = { host: radius.host, port: radius.port, secret: SECRET }
const at = (s: { port: number }) => `127.0.0.1:${s.port}`

function options(servers: RadiusServer[], more: Partial<RadiusOptions> = {}): RadiusOptions {
  return { servers, timeoutMs: 1000, retries: 1, nasIdentifier: 'tessera', ...more }
}

/** radiusValidate, checking on the way that the code is nowhere in what it returns. */
async function validate(t: Test, o: RadiusOptions, user: string, code: string) {
  const answer = await radiusValidate(o, user, code)
  t.notOk(JSON.stringify(answer).includes(code), 'the code is not in the answer')
  return answer
}

// --- RFC 2865 written a second time, for the test's own use -------------------------------------------

const md5 = (...parts: Buffer[]) => crypto.createHash('md5').update(Buffer.concat(parts)).digest()

/** RFC 2865 §5.2: c(1) = p1 xor MD5(S + RA), c(i) = p(i) xor MD5(S + c(i-1)). */
function hiddenByTheRfc(password: string, secret: string, requestAuthenticator: Buffer): Buffer {
  const p = Buffer.from(password, 'utf8')
  const padded = Buffer.concat([p, Buffer.alloc((16 - (p.length % 16)) % 16)])
  const blocks: Buffer[] = []
  for (let i = 0; i < padded.length / 16; i++) {
    const b = md5(Buffer.from(secret), i === 0 ? requestAuthenticator : blocks[i - 1]!)
    blocks.push(Buffer.from(padded.subarray(i * 16, i * 16 + 16).map((x, j) => x ^ b[j]!)))
  }
  return Buffer.concat(blocks)
}

function revealedByTheRfc(hidden: Buffer, secret: string, requestAuthenticator: Buffer): string {
  const out: number[] = []
  for (let i = 0; i < hidden.length; i += 16) {
    const b = md5(Buffer.from(secret), i === 0 ? requestAuthenticator : hidden.subarray(i - 16, i))
    for (let j = 0; j < 16; j++) out.push(hidden[i + j]! ^ b[j]!)
  }
  return Buffer.from(out).toString('utf8').replace(/\0+$/, '')
}

function attributesOf(packet: Buffer): { type: number; value: Buffer }[] {
  const list = []
  for (let i = 20; i < packet.readUInt16BE(2); i += packet[i + 1]!) list.push({ type: packet[i]!, value: packet.subarray(i + 2, i + packet[i + 1]!) })
  return list
}

/**
 * An answer to `request` as a server holding `secret` would sign it (RFC 2865 §3, RFC 3579 §3.2).
 * messageAuthenticator: 'right', 'forged' (16 random bytes) or 'none'; 'forged-response' keeps a right
 * Message-Authenticator but puts random bytes in the Response Authenticator.
 */
function answer(request: Buffer, code: number, secret: string, messageAuthenticator: 'right' | 'forged' | 'none' | 'forged-response', identifier = request[1]!): Buffer {
  const requestAuthenticator = request.subarray(4, 20)
  const ma = messageAuthenticator === 'none' ? Buffer.alloc(0) : Buffer.concat([Buffer.from([80, 18]), Buffer.alloc(16)])
  const replyMessage = Buffer.concat([Buffer.from([18, 2 + 5]), Buffer.from('hello')])
  const packet = Buffer.concat([Buffer.from([code, identifier, 0, 0]), requestAuthenticator, ma, replyMessage])
  packet.writeUInt16BE(packet.length, 2)
  if (messageAuthenticator === 'right' || messageAuthenticator === 'forged-response') crypto.createHmac('md5', secret).update(packet).digest().copy(packet, 22)
  if (messageAuthenticator === 'forged') crypto.randomBytes(16).copy(packet, 22)
  const responseAuthenticator = messageAuthenticator === 'forged-response' ? crypto.randomBytes(16) : md5(packet, Buffer.from(secret))
  responseAuthenticator.copy(packet, 4)
  return packet
}

/** A UDP server on loopback that hands each request to `reply` (which may answer or stay silent). */
async function responder(t: Test, reply: (request: Buffer, send: (answer: Buffer) => void, from: dgram.RemoteInfo) => void = () => {}) {
  const socket = dgram.createSocket('udp4')
  const requests: Buffer[] = []
  socket.on('message', (request, from) => {
    requests.push(request)
    reply(request, (bytes) => socket.send(bytes, from.port, from.address), from)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  return { port: socket.address().port, requests }
}

/** A loopback UDP port where nothing listens (the kernel answers ICMP port unreachable). */
async function closedPort(): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

// --- against FreeRADIUS -----------------------------------------------------------------------------------

t.test('FreeRADIUS accepts the right code', async (t) => {
  const got = await validate(t, options([freeradius]), 'alice', SIX)
  t.same(got, { result: 'accept', reason: 'Access-Accept', server: at(radius) })
  t.match(radius.log(), /Login OK: \[alice\]/)
})

t.test('FreeRADIUS refuses a wrong code, and that is a wrong code', async (t) => {
  const got = await validate(t, options([freeradius]), 'alice', '000000')
  t.same(got, { result: 'reject', reason: 'Access-Reject', why: 'wrong-code', server: at(radius) })
  t.match(radius.log(), /Login incorrect \(pap: Cleartext password does not match/)
})

t.test('a 20-character code and a user name with UTF-8 and quotes get through PAP intact', async (t) => {
  t.equal((await validate(t, options([freeradius]), 'bob', TWENTY)).result, 'accept', 'two 16-byte blocks')
  t.equal((await validate(t, options([freeradius]), 'bob', `${TWENTY.slice(0, 19)}9`)).result, 'reject', 'the last character counts')
  t.equal((await validate(t, options([freeradius]), 'bob', TWENTY.slice(0, 16))).result, 'reject', 'so does the second block')
  t.equal((await validate(t, options([freeradius]), 'zoë o"neil', '111111')).result, 'accept')
})

t.test('with a wrong shared secret FreeRADIUS drops the request, and the message says to check the secret', async (t) => {
  const started = Date.now()
  const got = await validate(t, options([{ ...freeradius, secret: 'not-the-secret' }], { timeoutMs: 300 }), 'alice', SIX)
  t.equal(got.result, 'unavailable', 'never accepted without a verified answer')
  t.match(got, { reason: 'timeout', message: /No RADIUS server answered within 0\.6 s\..*shared secret/ })
  t.ok(Date.now() - started < 1500)
  t.match(radius.log(), /invalid Message-Authenticator!\s+\(Shared secret is incorrect\.\)/, 'FreeRADIUS says why it stayed silent')
})

t.test('an unpatched FreeRADIUS, which does not sign its answers, is not believed', async (t) => {
  const unsigned = await startFreeRadius(t, { users: { alice: SIX }, secret: SECRET, replyMessageAuthenticator: false })
  const server = { host: unsigned.host, port: unsigned.port, secret: SECRET }
  for (const code of [SIX, '000000']) {
    const got = await validate(t, options([server], { timeoutMs: 300, retries: 0 }), 'alice', code)
    t.match(got, { result: 'unavailable', reason: 'no-message-authenticator', message: /without a Message-Authenticator.*CVE-2024-3596/ })
  }
  t.match(unsigned.log(), /Login OK: \[alice\]/, 'it did answer: the answer was refused')
})

// --- answers FreeRADIUS would not send -------------------------------------------------------------------

t.test('an Access-Accept signed with another secret is refused as failing its check', async (t) => {
  const other = await responder(t, (request, send) => send(answer(request, 2, 'some-other-secret', 'right')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: other.port, secret: SECRET }], { timeoutMs: 200 }), 'alice', SIX)
  t.equal(got.result, 'unavailable', 'never accepted without a verified answer')
  t.same(got, {
    result: 'unavailable', reason: 'bad-authenticator', server: at(other),
    message: `The RADIUS server's answer failed its check (${at(other)}): is the shared secret right?`,
  })
  t.equal(other.requests.length, 2, 'asked again, in case a valid answer comes')
})

t.test('an Access-Accept with a right Response Authenticator but a forged Message-Authenticator is refused', async (t) => {
  const forger = await responder(t, (request, send) => send(answer(request, 2, SECRET, 'forged')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: forger.port, secret: SECRET }], { timeoutMs: 200 }), 'alice', SIX)
  t.match(got, { result: 'unavailable', reason: 'bad-authenticator' })
})

t.test('an Access-Accept with a right Message-Authenticator but a forged Response Authenticator is refused', async (t) => {
  const forger = await responder(t, (request, send) => send(answer(request, 2, SECRET, 'forged-response')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: forger.port, secret: SECRET }], { timeoutMs: 200 }), 'alice', SIX)
  t.match(got, { result: 'unavailable', reason: 'bad-authenticator' })
})

t.test('an Access-Accept without Message-Authenticator is refused (Blast-RADIUS, CVE-2024-3596)', async (t) => {
  const old = await responder(t, (request, send) => send(answer(request, 2, SECRET, 'none')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: old.port, secret: SECRET }], { timeoutMs: 200 }), 'alice', SIX)
  t.same(got, {
    result: 'unavailable', reason: 'no-message-authenticator', server: at(old),
    message: `The RADIUS server answered without a Message-Authenticator (${at(old)}); Tessera requires one (Blast-RADIUS, CVE-2024-3596).`,
  })
})

t.test('the same unsigned answer is accepted once signed: the responder itself is right', async (t) => {
  const good = await responder(t, (request, send) => send(answer(request, 2, SECRET, 'right')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: good.port, secret: SECRET }]), 'alice', SIX)
  t.same(got, { result: 'accept', reason: 'Access-Accept', server: at(good) })
})

t.test('an Access-Challenge is a refusal: Tessera does not do challenge-response', async (t) => {
  const challenger = await responder(t, (request, send) => send(answer(request, 11, SECRET, 'right')))
  const got = await validate(t, options([{ host: '127.0.0.1', port: challenger.port, secret: SECRET }]), 'alice', SIX)
  t.same(got, { result: 'reject', reason: 'Access-Challenge', why: 'other', server: at(challenger) })
})

t.test('answers that are not RADIUS or carry another identifier are ignored, and the real one is taken', async (t) => {
  const noisy = await responder(t, (request, send) => {
    send(Buffer.from('not a RADIUS packet at all'))
    send(answer(request, 2, SECRET, 'right', (request[1]! + 1) % 256))
    setTimeout(() => send(answer(request, 3, SECRET, 'right')), 50)
  })
  const got = await validate(t, options([{ host: '127.0.0.1', port: noisy.port, secret: SECRET }]), 'alice', SIX)
  t.same(got, { result: 'reject', reason: 'Access-Reject', why: 'wrong-code', server: at(noisy) })
})

t.test('a signed Access-Accept from a port the client did not ask is not taken', async (t) => {
  const accomplice = dgram.createSocket('udp4')
  t.teardown(() => new Promise<void>((resolve) => accomplice.close(() => resolve())))
  await new Promise<void>((resolve) => accomplice.bind(0, '127.0.0.1', () => resolve()))
  let sent = 0
  // The server asked stays silent; an accomplice on another port answers in its place.
  const asked = await responder(t, (request, _send, from) => accomplice.send(answer(request, 2, SECRET, 'right'), from.port, from.address, () => { sent++ }))
  const got = await validate(t, options([{ host: '127.0.0.1', port: asked.port, secret: SECRET }], { timeoutMs: 300, retries: 0 }), 'alice', SIX)
  t.equal(sent, 1)
  t.match(got, { result: 'unavailable', reason: 'timeout' })
})

// --- failover and timeouts ----------------------------------------------------------------------------------

t.test('when nothing listens on the first server, the second answers at once', async (t) => {
  const down = await closedPort()
  const started = Date.now()
  const got = await validate(t, options([{ host: '127.0.0.1', port: down, secret: SECRET }, freeradius], { timeoutMs: 2000 }), 'alice', SIX)
  t.same(got, { result: 'accept', reason: 'Access-Accept', server: at(radius) })
  t.ok(Date.now() - started < 500, `ICMP port unreachable moves on without waiting (${Date.now() - started} ms)`)
})

t.test('when the first server is silent, it is asked again with the same packet, then the second answers', async (t) => {
  const silent = await responder(t)
  const started = Date.now()
  const got = await validate(t, options([{ host: '127.0.0.1', port: silent.port, secret: SECRET }, freeradius], { timeoutMs: 200, retries: 1 }), 'alice', SIX)
  const took = Date.now() - started
  t.same(got, { result: 'accept', reason: 'Access-Accept', server: at(radius) })
  t.equal(silent.requests.length, 2, 'one try and one retry')
  t.same(silent.requests[1], silent.requests[0], 'the retry is the same packet: same identifier and authenticator')
  t.ok(took >= 380 && took < 1000, `two waits of 200 ms, then the answer (${took} ms)`)
})

t.test('when every server is silent, the answer is a timeout after (retries + 1) × timeout each', async (t) => {
  const one = await responder(t)
  const two = await responder(t)
  const started = Date.now()
  const got = await validate(t, options([one, two].map((s) => ({ host: '127.0.0.1', port: s.port, secret: SECRET })), { timeoutMs: 200, retries: 1 }), 'alice', SIX)
  const took = Date.now() - started
  t.match(got, { result: 'unavailable', reason: 'timeout', message: /^No RADIUS server answered within 0\.4 s\./ })
  t.notOk('server' in got)
  t.ok(took >= 780 && took < 1300, `2 servers × 2 tries × 200 ms (${took} ms)`)
  t.same([one.requests.length, two.requests.length], [2, 2])
  t.not(one.requests[0]!.subarray(4, 20).toString('hex'), two.requests[0]!.subarray(4, 20).toString('hex'), 'a new authenticator for the next server')
})

t.test('when no server listens at all, the message says so', async (t) => {
  const got = await validate(t, options([{ host: '127.0.0.1', port: await closedPort(), secret: SECRET }]), 'alice', SIX)
  t.match(got, { result: 'unavailable', reason: 'connection-refused', message: /^No RADIUS server could be reached: 127\.0\.0\.1:\d+ refused/ })
})

// --- what is sent --------------------------------------------------------------------------------------------

t.test('the request: Message-Authenticator first and right, the password hidden as RFC 2865 §5.2 says', async (t) => {
  const seen = await responder(t, (request, send) => send(answer(request, 3, SECRET, 'right')))
  for (const code of [SIX, TWENTY]) {
    await validate(t, options([{ host: '127.0.0.1', port: seen.port, secret: SECRET }]), 'alice', code)
    const request = seen.requests.at(-1)!
    t.equal(request[0], 1, 'Access-Request')
    const attributes = attributesOf(request)
    t.same(attributes.map((a) => a.type), [80, 1, 2, 32], 'Message-Authenticator, User-Name, User-Password, NAS-Identifier')
    t.equal(attributes[1]!.value.toString(), 'alice')
    t.equal(attributes[3]!.value.toString(), 'tessera')
    const requestAuthenticator = request.subarray(4, 20)
    const hidden = attributes[2]!.value
    t.equal(hidden.length, code.length <= 16 ? 16 : 32, 'padded to 16-byte blocks')
    t.same(hidden, hiddenByTheRfc(code, SECRET, requestAuthenticator), `a ${code.length}-character code hidden as the RFC computes it`)
    t.equal(revealedByTheRfc(hidden, SECRET, requestAuthenticator), code, 'and revealed back')
    t.notOk(request.includes(Buffer.from(code)), 'the code is not in the clear')
    const zeroed = Buffer.from(request)
    zeroed.fill(0, 22, 38)
    t.same(request.subarray(22, 38), crypto.createHmac('md5', SECRET).update(zeroed).digest(), 'HMAC-MD5 over the request with the attribute zeroed (RFC 3579 §3.2)')
  }
  t.not(seen.requests[0]!.subarray(4, 20).toString('hex'), seen.requests[1]!.subarray(4, 20).toString('hex'), 'a new random authenticator each call')
})

t.test('hidePassword agrees with the RFC for 6, 20 and 128 bytes, and refuses more', async (t) => {
  const requestAuthenticator = crypto.randomBytes(16)
  for (const code of [SIX, TWENTY, 'x'.repeat(128)]) {
    t.same(hidePassword(Buffer.from(code), Buffer.from(SECRET), requestAuthenticator), hiddenByTheRfc(code, SECRET, requestAuthenticator), `${code.length} bytes`)
  }
  t.throws(() => hidePassword(Buffer.alloc(129, 0x31), Buffer.from(SECRET), requestAuthenticator), RangeError)
})

t.test('decodePacket refuses what is not a whole RADIUS packet', async (t) => {
  const good = answer(Buffer.concat([Buffer.from([1, 7, 0, 20]), crypto.randomBytes(16)]), 2, SECRET, 'right')
  t.match(decodePacket(good), { code: 2, identifier: 7, attributes: [{ type: 80 }, { type: 18 }] })
  t.equal(decodePacket(Buffer.concat([good, Buffer.alloc(5)]))?.bytes.length, good.length, 'bytes past Length are padding')
  t.equal(decodePacket(good.subarray(0, 19)), undefined, 'shorter than a header')
  t.equal(decodePacket(good.subarray(0, good.length - 1)), undefined, 'shorter than its Length')
  const zeroLength = Buffer.from(good)
  zeroLength[21] = 0
  t.equal(decodePacket(zeroLength), undefined, 'an attribute of length 0')
  const overrun = Buffer.from(good)
  overrun[21] = 40
  t.equal(decodePacket(overrun), undefined, 'an attribute past the end')
})

// --- arguments -----------------------------------------------------------------------------------------------

t.test('arguments no server could accept are refused with a clear error, and nothing is sent', async (t) => {
  const seen = await responder(t)
  const o = options([{ host: '127.0.0.1', port: seen.port, secret: SECRET }])
  await t.rejects(radiusValidate(o, '', SIX), { name: 'TypeError', message: /user name must be 1 to 253 bytes/ })
  await t.rejects(radiusValidate(o, 'é'.repeat(127), SIX), { message: /user name must be 1 to 253 bytes/ }, '254 bytes in UTF-8')
  await t.rejects(radiusValidate(o, 'alice', ''), { name: 'TypeError', message: /code must be 1 to 128 bytes/ })
  await t.rejects(radiusValidate(o, 'alice', '1'.repeat(129)), { message: 'radiusValidate: the code must be 1 to 128 bytes (RFC 2865 §5.2)' })
  await t.rejects(radiusValidate(o, 'alice', '123\u0000456'), { message: /must not contain NUL/ })
  await t.rejects(radiusValidate({ ...o, servers: [{ ...o.servers[0]!, secret: '' }] }, 'alice', SIX), { message: /shared secret of 127\.0\.0\.1:\d+ is empty/ })
  await t.rejects(radiusValidate({ ...o, servers: [] }, 'alice', SIX), { message: /at least one RADIUS server/ })
  await t.rejects(radiusValidate({ ...o, nasIdentifier: '' }, 'alice', SIX), { message: /nasIdentifier/ })
  t.equal(seen.requests.length, 0)
  const longest = await validate(t, options([freeradius]), 'é'.repeat(126), '1'.repeat(128))
  t.match(longest, { result: 'reject', reason: 'Access-Reject' }, '252 and 128 bytes are sent, and FreeRADIUS reads them (no such user)')
})
