// E-mail through SMTP with nodemailer: the URL says the server, TLS (smtps://, or STARTTLS when offered)
// and the account (smtp://user:password@host:587). The message id is the server's queue answer.
import nodemailer from 'nodemailer'
import { abortable, ProviderRefused, type OutgoingMessage, type Provider } from './provider.js'

export function smtpProvider(config: { name: string; url: string; from: string }, timeoutMs: number): Provider {
  const transport = nodemailer.createTransport(config.url, {
    from: config.from,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    pool: true,
    maxConnections: 4,
  } as object)
  return {
    name: config.name,
    channel: 'email',
    async send(message: OutgoingMessage, signal: AbortSignal) {
      try {
        const info = await abortable(transport.sendMail({ from: config.from, to: message.to, subject: message.subject, text: message.text }), signal)
        if (info.rejected.length > 0) throw new ProviderRefused('the mail server refused the address')
        return { messageId: info.messageId ?? null }
      } catch (error) {
        const code = (error as { responseCode?: number }).responseCode
        if (code && code >= 500) throw new ProviderRefused(`the mail server refused the message (${code})`)
        throw error
      }
    },
    async close() {
      transport.close()
    },
  }
}
