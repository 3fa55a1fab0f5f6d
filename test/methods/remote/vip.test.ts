// The VIP Validate client against a VIP service on loopback with mutual TLS (test/helpers/vip-server.ts):
// the ReasonCodes in the gateway's words, each way TLS can fail, a slow or wrong or absent server, answers
// that are refused before they are read, and the options checked before a client exists. The code typed
// is taken from what the server was configured with, and is never in an answer or a message.
import t from 'tap'
import { randomInt } from 'node:crypto'
import { checkVipOptions, createVipClient, vipTestConnection, vipValidate, type VipOptions } from '../../../src/methods/remote/vip.js'
import type { RemoteAnswer } from '../../../src/methods/remote/answer.js'
import { freePort } from '../../helpers/net.js'
import { startVipServer, VIP_PATH } from '../../helpers/vip-server.js'

/** A fresh 6-digit code, never 000000 (Test connection's). */
const newCode = () => String(randomInt(100000, 1000000))
const codes = { alice: newCode(), disabled: newCode(), locked: newCode() }
const vip = await startVipServer(t, {
  credentials: {
    SYMC12345678: { code: () => codes.alice },
    VSST87654321: { code: () => codes.disabled, state: 'disabled' },
    'UBHE-0042': { code: () => codes.locked, state: 'locked' },
  },
})
const options: VipOptions = { url: vip.url, pfx: vip.clientPfx, passphrase: vip.clientPassphrase, ca: vip.caPem, timeoutMs: 2000 }
const client = createVipClient(options)
t.teardown(() => client.close())

/** Every code sent and every answer or message seen, checked against each other at the end. */
const sent: string[] = []
const seen: unknown[] = []
const validate = async (c: { validate: (id: string, code: string) => Promise<RemoteAnswer> }, id: string, code: string) => {
  sent.push(code)
  const answer = await c.validate(id, code)
  seen.push(answer)
  return answer
}
const other = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0')

t.test('the right code is accepted with VIP\'s 0000, and the server received that code', async (t) => {
  const answer = await validate(client, 'SYMC12345678', codes.alice)
  t.same(answer, { result: 'accept', reason: '0000' })
  t.same(vip.received.at(-1), { tokenId: 'SYMC12345678', otp: codes.alice })
})

t.test('a wrong code is refused as wrong-code with the server\'s ReasonCode', async (t) => {
  const wrong = other(codes.alice)
  const answer = await validate(client, 'SYMC12345678', wrong)
  t.same(answer, { result: 'reject', reason: '49B5', why: 'wrong-code' })
  t.same(vip.received.at(-1), { tokenId: 'SYMC12345678', otp: wrong })
})

t.test('a disabled, a locked and an unknown credential are refused for what they are', async (t) => {
  t.same(await validate(client, 'VSST87654321', codes.disabled), { result: 'reject', reason: '4993', why: 'disabled' })
  t.same(await validate(client, 'UBHE-0042', codes.locked), { result: 'reject', reason: '4994', why: 'locked' })
  t.same(await validate(client, 'SYMC00000000', newCode()), { result: 'reject', reason: '4E03', why: 'unknown-credential' })
})

t.test('repeated validations reuse one kept-alive TLS connection, and a dropped one is replaced', async (t) => {
  const before = vip.tlsConnections()
  for (let i = 0; i < 3; i++) t.equal((await validate(client, 'SYMC12345678', codes.alice)).result, 'accept')
  t.equal(vip.tlsConnections(), before, 'no new connection')
  vip.dropConnections()
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal((await validate(client, 'SYMC12345678', codes.alice)).result, 'accept')
  t.equal(vip.tlsConnections(), before + 1)
})

t.test('a kept-alive connection the server closed as the request went out is retried once on a new one', async (t) => {
  t.equal((await validate(client, 'SYMC12345678', codes.alice)).result, 'accept', 'a connection to reuse')
  vip.hangUpReused(true)
  t.teardown(() => vip.hangUpReused(false))
  const before = vip.tlsConnections()
  t.same(await validate(client, 'SYMC12345678', codes.alice), { result: 'accept', reason: '0000' })
  t.equal(vip.tlsConnections(), before + 1, 'answered on a new connection')
})

t.test('a client certificate the server does not trust: tls-client-refused, in words', async (t) => {
  const stranger = createVipClient({ ...options, pfx: vip.strangerPfx })
  t.teardown(() => stranger.close())
  const answer = await validate(stranger, 'SYMC12345678', codes.alice)
  t.match(answer, { result: 'unavailable', reason: 'tls-client-refused',
    message: /^The VIP service refused our client certificate\. Check that the PKCS#12 file is the one VIP issued for this account and has not expired\./ })
  t.test('the same with TLS 1.2, where the server hangs up during the handshake', async (t) => {
    const vip12 = await startVipServer(t, { credentials: {}, maxTlsVersion: 'TLSv1.2' })
    const answer = await validate({ validate: (id, code) => vipValidate({ ...options, url: vip12.url, ca: vip12.caPem, pfx: vip.strangerPfx }, id, code) }, 'SYMC12345678', newCode())
    t.match(answer, { result: 'unavailable', reason: 'tls-client-refused', message: /during the TLS handshake/ })
    t.same(vip12.received, [], 'nothing reached the service')
  })
})

t.test('a server certificate we do not trust: tls-server-untrusted, in words', async (t) => {
  const answer = await vipValidate({ ...options, ca: vip.otherCaPem }, 'SYMC12345678', codes.alice)
  seen.push(answer)
  t.same(answer, { result: 'unavailable', reason: 'tls-server-untrusted',
    message: "We don't trust the VIP service's certificate (it is not signed by a CA we trust). Check the CA certificate and the URL." })
  const roots = await vipValidate({ ...options, ca: null }, 'SYMC12345678', codes.alice)
  t.equal(roots.result === 'unavailable' && roots.reason, 'tls-server-untrusted', "Node's default roots do not know the test CA")
  const wrongName = await vipValidate({ ...options, url: vip.url.replace('127.0.0.1', 'localhost') }, 'SYMC12345678', codes.alice)
  t.equal(wrongName.result, 'accept', 'the certificate names localhost too')
})

t.test('a slow server: timeout, about when the timeout runs out', async (t) => {
  vip.setDelay(3000)
  t.teardown(() => vip.setDelay(0))
  const started = Date.now()
  const answer = await vipValidate({ ...options, timeoutMs: 1000 }, 'SYMC12345678', codes.alice)
  const took = Date.now() - started
  seen.push(answer)
  t.same(answer, { result: 'unavailable', reason: 'timeout', message: 'The VIP service did not answer within 1 s.' })
  t.ok(took >= 950 && took < 1600, `answered after ${took} ms`)
})

t.test('a wrong path: wrong-url; nothing listening: unreachable', async (t) => {
  const wrongPath = await vipValidate({ ...options, url: vip.url.replace(VIP_PATH, '/vipservices/validate') }, 'SYMC12345678', codes.alice)
  t.same(wrongPath, { result: 'unavailable', reason: 'wrong-url', message: 'The VIP service answered 404 at this URL: check the URL.' })
  const port = await freePort()
  const nobody = await vipValidate({ ...options, url: `https://127.0.0.1:${port}${VIP_PATH}` }, 'SYMC12345678', codes.alice)
  t.same(nobody, { result: 'unavailable', reason: 'unreachable', message: `Nothing answers at 127.0.0.1:${port} (connection refused). Check the URL.` })
  const noHost = await vipValidate({ ...options, url: `https://vip.invalid${VIP_PATH}` }, 'SYMC12345678', codes.alice)
  t.match(noHost, { result: 'unavailable', reason: 'unreachable', message: /host name vip\.invalid was not found/ })
  seen.push(wrongPath, nobody, noHost)
})

t.test('Test connection: ok with any VIP answer, the reason in words otherwise', async (t) => {
  const ok = await client.testConnection()
  t.same(ok, { ok: true, message: 'Connected: the VIP service answered (ReasonCode 4E03: Credential ID not found).' })
  t.same(vip.received.at(-1), { tokenId: 'TESSERA-TEST-0000', otp: '000000' })
  t.same(await vipTestConnection(options), ok)
  t.same(await vipTestConnection({ ...options, pfx: vip.strangerPfx }), { ok: false, reason: 'tls-client-refused',
    message: 'The VIP service refused our client certificate. Check that the PKCS#12 file is the one VIP issued for this account and has not expired. (It closed the connection right after the TLS handshake.)' })
  t.match(await vipTestConnection({ ...options, ca: vip.otherCaPem }), { ok: false, reason: 'tls-server-untrusted' })
  vip.answerRaw({ status: 500, contentType: 'text/html', body: '<html><body>Internal error</body></html>' })
  t.teardown(() => vip.answerRaw(null))
  t.same(await client.testConnection(), { ok: false, reason: 'http-500', message: 'The VIP service answered HTTP 500 (a server error) at this URL.' })
})

t.test('answers that are refused or not VIP\'s judgement of the code', async (t) => {
  t.teardown(() => vip.answerRaw(null))
  const envelope = (inner: string, ns = 'http://www.verisign.com/2006/08/vipservice') =>
    `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><v:ValidateResponse xmlns:v="${ns}" Version="2.0">${inner}</v:ValidateResponse></soap:Body></soap:Envelope>`
  const status = (code: string, message: string) => envelope(`<v:Status><v:ReasonCode>${code}</v:ReasonCode><v:StatusMessage>${message}</v:StatusMessage></v:Status>`)
  const cases: [string, { status?: number; body: string | Buffer }, RemoteAnswer | RegExp][] = [
    ['a DTD (entity expansion) is refused', { body: `<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>${status('0000', '&lol2;')}` },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer cannot be used: it has a DTD (<!DOCTYPE ...>), which is refused." }],
    ['an answer over 64 KB is refused', { body: status('0000', 'x'.repeat(70 * 1024)) },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer is larger than 64 KB: refused." }],
    ['a page that is not XML', { body: 'Please log in to the proxy' }, /^The VIP service's answer cannot be used: it is not well-formed XML \(line 1, column \d+\)\.$/],
    ['XML that is not SOAP', { body: '<ValidateResponse><Status><ReasonCode>0000</ReasonCode></Status></ValidateResponse>' },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer cannot be used: it is not a SOAP 1.1 envelope." }],
    ['no ReasonCode', { body: envelope('<v:Status><v:StatusMessage>Success</v:StatusMessage></v:Status>') },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer has no ValidateResponse/Status/ReasonCode." }],
    ['a ReasonCode that is not four hex digits (the code echoed back) never becomes a reason', { body: status('123456', 'Success') },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's ReasonCode is not four hexadecimal digits (…)." }],
    ['an element inside the ReasonCode is refused', { body: status('00<v:x>00</v:x>00', 'Success') },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer cannot be used: its ReasonCode holds an element." }],
    ['a ReasonCode outside ValidateResponse/Status does not count', { body: envelope('<v:ReasonCode>0000</v:ReasonCode>') },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer has no ValidateResponse/Status/ReasonCode." }],
    ['a ValidateResponse for another request', { body: status('0000', 'Success').replace('Version="2.0"', 'Version="2.0" RequestId="NOT-OURS"') },
      { result: 'unavailable', reason: 'bad-answer', message: "The VIP service's answer is for another request (its RequestId is not ours)." }],
    ['a SOAP fault, its text scrubbed of anything like a code', { status: 500, body:
      '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault><faultcode>e:Client</faultcode><faultstring>cvc-pattern-valid: Value \'CODE\' is not facet-valid</faultstring></e:Fault></e:Body></e:Envelope>' },
      { result: 'unavailable', reason: 'soap-fault', message: "The VIP service answered with a SOAP fault: cvc-pattern-valid: Value '…' is not facet-valid (e:Client)." }],
    ['VIP busy is not a refusal', { body: status('4879', 'The service is temporarily unavailable') },
      { result: 'unavailable', reason: 'service-error', message: 'The VIP service could not check the code (ReasonCode 4879: The service is temporarily unavailable).' }],
    ['an unknown ReasonCode is a refusal, other, in either case and the newer namespace', { body: envelope('<v:Status><v:ReasonCode>49f0</v:ReasonCode></v:Status>', 'https://schemas.vip.symantec.com/2006/08/vipservice') },
      { result: 'reject', reason: '49f0', why: 'other' }],
    ['a redirect is not followed', { status: 302, body: '' }, { result: 'unavailable', reason: 'http-302', message: 'The VIP service answered HTTP 302 at this URL.' }],
  ]
  for (const [name, raw, expected] of cases) {
    const code = newCode()
    vip.answerRaw({ ...raw, body: typeof raw.body === 'string' ? raw.body.replace('CODE', code) : raw.body })
    const answer = await validate(client, 'SYMC12345678', code)
    if (expected instanceof RegExp) t.match(answer, { result: 'unavailable', reason: 'bad-answer', message: expected }, name)
    else t.same(answer, expected, name)
    t.same(vip.received.at(-1), { tokenId: 'SYMC12345678', otp: code }, `${name}: the code reached the server`)
  }
  vip.answerRaw(null)
  t.equal((await validate(client, 'SYMC12345678', codes.alice)).result, 'accept', 'the client is still good afterwards')
})

t.test('options are checked before a client exists, each error naming its field', async (t) => {
  t.doesNotThrow(() => checkVipOptions(options))
  t.throws(() => checkVipOptions({ ...options, passphrase: 'not-it' }), { message: 'VIP passphrase: the PKCS#12 file cannot be opened with this passphrase' })
  t.throws(() => createVipClient({ ...options, passphrase: 'not-it' }), { message: /^VIP passphrase:/ })
  t.throws(() => checkVipOptions({ ...options, url: vip.url.replace('https:', 'http:') }), { message: 'VIP url: must start with https:// (not http://)' })
  t.throws(() => checkVipOptions({ ...options, url: 'vip.example.com/val/soap' }), { message: 'VIP url: not a URL' })
  t.throws(() => checkVipOptions({ ...options, ca: Buffer.from('not a certificate') }), { message: /^VIP ca: not a PEM certificate/ })
  t.throws(() => checkVipOptions({ ...options, ca: Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') }), { message: 'VIP ca: certificate 1 of the PEM cannot be read' })
  t.throws(() => checkVipOptions({ ...options, pfx: Buffer.from('not a pfx') }), { message: /^VIP pfx: not a PKCS#12 file/ })
  t.throws(() => checkVipOptions({ ...options, pfx: vip.legacyClientPfx }), { message: /^VIP pfx: the PKCS#12 file uses an old encryption \(RC2\)/ })
  for (const timeoutMs of [0, 999, 30_001, 1500.5]) t.throws(() => checkVipOptions({ ...options, timeoutMs }), { message: /^VIP timeoutMs:/ }, `${timeoutMs}`)
})

t.test('a malformed credential id or code is a programmer error, and nothing is sent', async (t) => {
  const count = vip.received.length
  await t.rejects(client.validate('SYMC<1>', '123456'), { message: /^VIP credential id:/ })
  await t.rejects(client.validate('SYMC12345678', '12345'), { message: 'VIP code: 6 to 8 digits expected' })
  await t.rejects(client.validate('SYMC12345678', '12345a'), { message: 'VIP code: 6 to 8 digits expected' })
  t.equal(vip.received.length, count)
  const closed = createVipClient(options)
  closed.close()
  await t.rejects(closed.validate('SYMC12345678', codes.alice), { message: 'this VIP client is closed' })
})

t.test('no answer or message ever holds a code that was sent', async (t) => {
  const text = JSON.stringify(seen)
  t.ok(sent.length > 20)
  for (const code of sent) t.notOk(text.includes(code), `not ${code}`)
})
