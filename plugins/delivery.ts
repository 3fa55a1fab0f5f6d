// The delivery pipeline of sent codes (src/methods/sent-code/delivery.ts): the configured providers, and a
// worker on this process. Every process runs one; a job goes to one of them.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ProviderConfig } from '../fastify.config.js'
import { DeliveryWorker } from '../src/methods/sent-code/delivery.js'
import { httpProvider, kannelTemplate } from '../src/methods/sent-code/providers/http.js'
import type { Provider } from '../src/methods/sent-code/providers/provider.js'
import { smppProvider } from '../src/methods/sent-code/providers/smpp.js'
import { smtpProvider } from '../src/methods/sent-code/providers/smtp.js'

declare module 'fastify' {
  interface FastifyInstance {
    delivery: DeliveryWorker
  }
}

export function makeProvider(config: ProviderConfig, timeoutMs: number): Provider {
  switch (config.type) {
    case 'smtp': return smtpProvider(config, timeoutMs)
    case 'smpp': return smppProvider(config, timeoutMs)
    case 'kannel': return httpProvider(kannelTemplate(config))
    case 'http': return httpProvider(config)
  }
}

async function deliveryPlugin(app: FastifyInstance): Promise<void> {
  const { providers, timeoutMs } = app.config.delivery
  const worker = new DeliveryWorker(app.commands, providers.map((p) => makeProvider(p, timeoutMs)), {
    timeoutMs,
    log: (message, detail) => app.log.error(detail ?? {}, message),
  })
  app.decorate('delivery', worker)
  app.addHook('onReady', async () => worker.start())
  app.addHook('preClose', async () => worker.stop())
}

export default fp(deliveryPlugin, { name: 'delivery', dependencies: ['commands'] })
