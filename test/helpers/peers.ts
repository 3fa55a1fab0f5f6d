// Real protocol peers on loopback for the delivery pipeline: a mail server (smtp-server), an SMS centre
// speaking SMPP (the `smpp` package's server) and an HTTP SMS gateway speaking Kannel's sendsms. Each
// records what it received; a test reads the code a user would type from there, never from our database.
// Each can be told to refuse, to stay silent (a timeout) or to go down.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { SMTPServer } from 'smtp-server'
import smpp, { type PDU, type Session } from 'smpp'
import { freePort } from './net.js'

export interface Received {
  to: string
  text: string
  at: number
}

export type Mode = 'accept' | 'refuse' | 'silent'

/** The code in a message: the first run of 6 to 8 digits. */
export function codeIn(message: Received | undefined): string {
  const code = message && /\b(\d{6,8})\b/.exec(message.text)?.[1]
  if (!code) throw new Error(`no code in ${JSON.stringify(message?.text)}`)
  return code
}

/** Waits until `list` has at least `n` entries (at most `ms`). */
export async function received(list: Received[], n = 1, ms = 5000): Promise<Received[]> {
  const deadline = Date.now() + ms
  while (list.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  return list
}

export async function smtpPeer(t: Test) {
  const port = await freePort()
  const messages: Received[] = []
  const peer = { port, messages, mode: 'accept' as Mode, url: `smtp://127.0.0.1:${port}` }
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (peer.mode === 'refuse') return callback(Object.assign(new Error('mailbox unavailable'), { responseCode: 550 }))
      callback()
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        if (peer.mode === 'silent') return // never answers: the client times out
        const raw = Buffer.concat(chunks).toString('utf8')
        // The body, quoted-printable decoded (RFC 2045 section 6.7) as nodemailer encodes non-ASCII text.
        const encoded = raw.split(/\r?\n\r?\n/).slice(1).join('\n\n').replace(/=\r?\n/g, '')
        const body = Buffer.from(encoded.replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8')
        for (const to of session.envelope.rcptTo) messages.push({ to: to.address, text: body, at: Date.now() })
        callback(null, `queued as m${messages.length}`)
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return peer
}

/** An SMS centre: binds any system id with the password "secret"; answers submit_sm; sends receipts when asked. */
export async function smscPeer(t: Test, options: { receipts?: boolean } = {}) {
  const port = await freePort()
  const messages: (Received & { id: string })[] = []
  const sessions = new Set<Session>()
  let serial = 0
  const peer = { port, messages, mode: 'accept' as Mode, binds: 0, url: `smpp://tessera:secret@127.0.0.1:${port}` }
  const server = smpp.createServer((session) => {
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
    session.on('error', () => {})
    session.on('bind_transceiver', (pdu: PDU) => {
      if (pdu.password !== 'secret') {
        session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }))
        return session.close()
      }
      peer.binds++
      session.send(pdu.response())
    })
    session.on('enquire_link', (pdu: PDU) => session.send(pdu.response()))
    session.on('unbind', (pdu: PDU) => {
      session.send(pdu.response())
      session.close()
    })
    session.on('submit_sm', (pdu: PDU) => {
      if (peer.mode === 'silent') return
      if (peer.mode === 'refuse') return session.send(pdu.response({ command_status: smpp.ESME_RSUBMITFAIL }))
      const id = `smsc-${++serial}`
      const raw = pdu.short_message
      const text = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('latin1') : raw?.message ?? ''
      messages.push({ to: `+${pdu.destination_addr}`, text, at: Date.now(), id })
      session.send(pdu.response({ message_id: id }))
      if (options.receipts && pdu.registered_delivery) {
        setTimeout(() => session.deliver_sm({ source_addr: pdu.destination_addr, esm_class: 4,
          short_message: `id:${id} sub:001 dlvrd:001 submit date:2612040000 done date:2612040000 stat:DELIVRD err:000 text:` }), 20)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  const stop = () => new Promise<void>((resolve) => {
    for (const s of sessions) s.destroy()
    server.close(() => resolve())
  })
  t.teardown(stop)
  return { ...peer, get binds() { return peer.binds }, set mode(m: Mode) { peer.mode = m }, get mode() { return peer.mode }, stop }
}

/** An HTTP SMS gateway with Kannel's sendsms interface (GET, username/password, 202 "0: Accepted for delivery"). */
export async function kannelPeer(t: Test) {
  const messages: Received[] = []
  const peer = { messages, mode: 'accept' as Mode, url: '', requests: 0, reports: [] as number[] }
  const server = http.createServer((request, response) => {
    peer.requests++
    const url = new URL(request.url ?? '/', 'http://x')
    if (url.pathname !== '/cgi-bin/sendsms') return response.writeHead(404).end('Not found')
    if (url.searchParams.get('username') !== 'tessera' || url.searchParams.get('password') !== 'secret') {
      return response.writeHead(403).end('Authorization failed for sendsms')
    }
    if (peer.mode === 'silent') return
    if (peer.mode === 'refuse') return response.writeHead(400).end('Not routable. Do not try again.')
    messages.push({ to: url.searchParams.get('to') ?? '', text: url.searchParams.get('text') ?? '', at: Date.now() })
    response.writeHead(202).end('0: Accepted for delivery')
    // As Kannel does: the delivery report goes to dlr-url with %d the report's type (1: delivered to the phone).
    const dlr = url.searchParams.get('dlr-url')
    if (dlr) setTimeout(() => void fetch(dlr.replace('%d', '1')).then((r) => peer.reports.push(r.status), () => peer.reports.push(0)), 20)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cgi-bin/sendsms`
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return peer
}
