// SMS through an HTTP gateway: Kannel's sendsms interface (GET with username, password, to, text; 202
// "Accepted for delivery"), or any gateway described by a template: {phone}, {text} and {reference} are
// filled in (URL-encoded in the URL, JSON-escaped in a body that is JSON), and the answer must match
// `success`. Kannel's delivery reports come back to dlrUrl (routes: /delivery/kannel) naming {reference}.
import type { ProviderConfig } from '../../../../fastify.config.js'
import { abortable, ProviderRefused, type OutgoingMessage, type Provider } from './provider.js'

type HttpConfig = Extract<ProviderConfig, { type: 'http' }>
type KannelConfig = Extract<ProviderConfig, { type: 'kannel' }>

/** Kannel's sendsms as a template. */
export function kannelTemplate(config: KannelConfig): HttpConfig {
  const query = new URLSearchParams({ username: config.username, password: config.password })
  if (config.from) query.set('from', config.from)
  // Delivery reports: Kannel calls dlr-url with %d (the report type) filled in; mask 3 = delivered or failed.
  const dlr = config.dlrUrl ? `&dlr-mask=3&dlr-url=${encodeURIComponent(`${config.dlrUrl}?ref=`)}{reference}${encodeURIComponent('&type=%d')}` : ''
  return { name: config.name, type: 'http', method: 'GET', url: `${config.url}?${query}&to={phone}&text={text}${dlr}`, success: '^(0: )?Accepted|^Sent' }
}

export function httpProvider(config: HttpConfig): Provider {
  const success = new RegExp(config.success ?? '.', 'i')
  return {
    name: config.name,
    channel: 'sms',
    async send(message: OutgoingMessage, signal: AbortSignal) {
      const fill = (template: string, escape: (s: string) => string) => template.replace(/\{phone\}/g, escape(message.to))
        .replace(/\{text\}/g, escape(message.text)).replace(/\{reference\}/g, escape(message.reference))
      const url = fill(config.url, encodeURIComponent)
      const json = (config.headers?.['content-type'] ?? config.headers?.['Content-Type'] ?? '').includes('json')
      const body = config.body ? fill(config.body, json ? (s) => JSON.stringify(s).slice(1, -1) : encodeURIComponent) : undefined
      const response = await abortable(fetch(url, { method: config.method ?? (body ? 'POST' : 'GET'), headers: config.headers, body, signal }), signal)
      const text = (await response.text()).slice(0, 500)
      if (response.status >= 400 && response.status < 500) throw new ProviderRefused(`the gateway refused the message (HTTP ${response.status})`)
      if (!response.ok) throw new Error(`the gateway failed (HTTP ${response.status})`)
      if (!success.test(text.trim())) throw new ProviderRefused('the gateway did not accept the message')
      // Kannel answers "0: Accepted for delivery"; other gateways may name the message.
      const id = /(?:id|message_id)["':= ]+([A-Za-z0-9._-]{1,64})/i.exec(text)?.[1] ?? null
      return { messageId: id }
    },
    async close() {},
  }
}
