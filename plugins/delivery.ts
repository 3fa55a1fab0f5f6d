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
  // Kannel's delivery reports (dlr-url): the reference names the job and carries a MAC; type 1 is "delivered
  // to the phone". Public, as Kannel calls it, and answers the same for anything it does not know.
  app.get<{ Querystring: { ref?: string; type?: string } }>('/delivery/kannel', {
    config: { rateLimit: false },
    preHandler: app.limit({ max: 3000, timeWindow: '1 minute', keyGenerator: (r) => `dlr:${r.ip}` }),
  }, async (request, reply) => {
    const id = worker.jobOf(String(request.query.ref ?? ''))
    if (!id) return reply.code(404).type('text/plain').send('unknown report')
    await worker.receiptForJob(id, request.query.type === '1')
    return reply.type('text/plain').send('ok')
  })
  app.addHook('onReady', async () => worker.start())
  app.addHook('preClose', async () => worker.stop())
}

export default fp(deliveryPlugin, { name: 'delivery', dependencies: ['commands', 'rate-limit'] })
