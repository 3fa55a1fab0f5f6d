// Housekeeping of remote credentials (src/methods/remote): every minute, accepted codes whose lifetime is
// over are forgotten; at shutdown, the kept-alive connections to remote services are closed.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { sweepRemoteCodes } from '../src/methods/remote/credentials.js'
import { closeRemoteClients } from '../src/methods/remote/services.js'

const EVERY_MS = 60_000

async function remoteServicesPlugin(app: FastifyInstance): Promise<void> {
  let timer: NodeJS.Timeout | null = null
  app.addHook('onReady', async () => {
    timer = setInterval(() => {
      sweepRemoteCodes(app.db).catch((error) => app.log.error({ err: error }, 'remote code housekeeping failed'))
    }, EVERY_MS)
    timer.unref()
  })
  app.addHook('preClose', async () => {
    if (timer) clearInterval(timer)
  })
  app.addHook('onClose', async () => closeRemoteClients())
}

export default fp(remoteServicesPlugin, { name: 'remote-services', dependencies: ['db'] })
