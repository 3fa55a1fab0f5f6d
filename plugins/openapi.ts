// The admin and audit JSON APIs described with OpenAPI (@fastify/swagger), from the routes' own
// schemas; the document is served at /admin/api/openapi.json. Pages and the OpenID provider are not in it.
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'

async function openapiPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tessera admin and audit API',
        version: '1',
        description: 'Token inventory and lifecycle (admin API keys) and the event log (auditor API keys). '
          + 'Send the key as "Authorization: Bearer tsk_...". A refused operation is a 4xx with a message and writes nothing.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
    hideUntagged: false,
    transform: ({ schema, url }) => ({ schema: { ...schema, hide: !url.startsWith('/admin/api') && !url.startsWith('/audit/api') } as never, url }),
  })
  app.get('/admin/api/openapi.json', { schema: { hide: true } as never }, async () => app.swagger())
}

export default fp(openapiPlugin, { name: 'openapi' })
