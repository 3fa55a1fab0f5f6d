// The generic HTTP SMS provider against a real HTTP server on loopback: {phone}, {text} and {reference}
// filled in (JSON-escaped in a JSON body, URL-encoded in the URL), the answer matched against `success`;
// a 4xx or an answer that does not match is a refusal, a 5xx a failure to try again.
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { httpProvider } from '../../src/methods/sent-code/providers/http.js'

const seen: { url: string; headers: http.IncomingHttpHeaders; body: string }[] = []
let answer: { status: number; body: string } = { status: 200, body: '{"status":"queued","id":"msg-42"}' }
const server = http.createServer((request, response) => {
  let body = ''
  request.on('data', (c: Buffer) => { body += c.toString('utf8') })
  request.on('end', () => {
    seen.push({ url: request.url ?? '', headers: request.headers, body })
    response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body)
  })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const provider = httpProvider({ name: 'other', type: 'http', method: 'POST', url: `${base}/send?ref={reference}`,
  headers: { 'content-type': 'application/json', authorization: 'Bearer k' }, body: '{"to": "{phone}", "text": "{text}"}', success: '"queued"' })
const message = { to: '+447400123456', text: '123456 is your "Tessera" code.\nNever share it.', subject: '', reference: '7.abc' }

t.test('a JSON body with the phone and the text escaped, the reference in the URL, the message id read back', async (t) => {
  const result = await provider.send(message, AbortSignal.timeout(2000))
  t.same(result, { messageId: 'msg-42' })
  const got = seen.at(-1)!
  t.equal(got.url, '/send?ref=7.abc')
  t.equal(got.headers.authorization, 'Bearer k')
  t.same(JSON.parse(got.body), { to: '+447400123456', text: message.text }, 'quotes and newlines survive')
})

t.test('refusals and failures', async (t) => {
  answer = { status: 400, body: '{"error":"bad number"}' }
  await t.rejects(provider.send(message, AbortSignal.timeout(2000)), { name: 'ProviderRefused', message: 'the gateway refused the message (HTTP 400)' })
  answer = { status: 200, body: '{"status":"rejected"}' }
  await t.rejects(provider.send(message, AbortSignal.timeout(2000)), { name: 'ProviderRefused', message: 'the gateway did not accept the message' })
  answer = { status: 503, body: 'busy' }
  await t.rejects(provider.send(message, AbortSignal.timeout(2000)), { name: 'Error', message: 'the gateway failed (HTTP 503)' })
})
