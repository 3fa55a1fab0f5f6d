// SMS straight to an SMS centre over SMPP (the `smpp` package): one transceiver session, bound with the
// URL's user and password (smpp://system_id:password@host:2775, ssmpp:// for TLS), opened when first
// needed and again after it closed. submit_sm asks for a delivery receipt; the SMSC's deliver_sm receipts
// ("id:... stat:DELIVRD") are passed to the listener.
import smpp, { type PDU, type Session } from 'smpp'
import { abortable, ProviderRefused, type OutgoingMessage, type Provider } from './provider.js'

function receiptOf(pdu: PDU): { id: string; delivered: boolean } | null {
  if (pdu.receipted_message_id) return { id: pdu.receipted_message_id, delivered: pdu.message_state === 2 }
  const raw = pdu.short_message
  const text = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('latin1') : raw?.message ?? ''
  const match = /id:(\S+).*stat:(\w+)/i.exec(text)
  return match ? { id: match[1]!, delivered: match[2]!.toUpperCase() === 'DELIVRD' } : null
}

export function smppProvider(config: { name: string; url: string; source?: string }, timeoutMs: number): Provider {
  const url = new URL(config.url)
  const address = `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'ssmpp:' ? 3550 : 2775)}`
  const receiptListeners: ((id: string, delivered: boolean) => void)[] = []
  let bound: Promise<Session> | null = null
  let closing = false

  function bind(): Promise<Session> {
    return new Promise<Session>((resolve, reject) => {
      const session = smpp.connect({ url: address, auto_enquire_link_period: 30_000, connectTimeout: timeoutMs })
      // An SMS centre that takes the connection and never answers the bind: give up, and bind afresh next time.
      const timer = setTimeout(() => {
        session.destroy()
        fail(new Error('the SMS centre did not answer the bind'))
      }, timeoutMs)
      timer.unref()
      const fail = (error: Error) => {
        clearTimeout(timer)
        bound = null
        reject(error)
      }
      session.once('error', fail)
      session.on('close', () => { bound = null })
      session.on('deliver_sm', (pdu: PDU) => {
        session.send(pdu.response())
        const receipt = receiptOf(pdu)
        if (receipt) for (const listener of receiptListeners) listener(receipt.id, receipt.delivered)
      })
      session.bind_transceiver({ system_id: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }, (pdu) => {
        clearTimeout(timer)
        session.off('error', fail)
        session.on('error', () => { bound = null })
        if (pdu.command_status !== 0) {
          session.close()
          return fail(new ProviderRefused(`the SMS centre refused the bind (status ${pdu.command_status})`))
        }
        resolve(session)
      })
    })
  }

  return {
    name: config.name,
    channel: 'sms',
    async send(message: OutgoingMessage, signal: AbortSignal) {
      if (closing) throw new Error('the provider is closing')
      bound ??= bind()
      const session = await abortable(bound, signal)
      const pdu = await abortable(new Promise<PDU>((resolve) => session.submit_sm({
        source_addr: config.source ?? '', destination_addr: message.to.replace(/^\+/, ''), short_message: message.text, registered_delivery: 1,
      }, resolve)), signal)
      if (pdu.command_status !== 0) throw new ProviderRefused(`the SMS centre refused the message (status ${pdu.command_status})`)
      return { messageId: pdu.message_id ?? null }
    },
    onReceipt(listener) {
      receiptListeners.push(listener)
    },
    async close() {
      closing = true
      const session = await bound?.catch(() => null)
      if (session) await new Promise<void>((resolve) => { session.close(() => resolve()); setTimeout(resolve, 1000).unref() })
    },
  }
}
