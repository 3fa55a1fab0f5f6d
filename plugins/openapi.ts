// The admin and audit JSON APIs described with OpenAPI (@fastify/swagger), from the routes' own
// schemas and the summaries below; the document is served at /admin/api/openapi.json (and as a page at
// /admin/api/docs, routes/admin/api.ts). Pages and the OpenID provider are not in it.
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'

/** What each operation does, in a line; query parameters that have no schema are named here. */
const SUMMARIES: Record<string, string> = {
  'POST /admin/api/tokens/import': 'Import a token inventory (text/csv body; ?format=entra|oath). Each row imported or reported with its line and reason.',
  'GET /admin/api/tokens': 'Search tokens: ?serial= (beginning), user=, status=, manufacturer=, model=, after= (last serial of the previous page), limit= (1-500).',
  'GET /admin/api/tokens/{serial}': "A token's state and its event history.",
  'POST /admin/api/tokens/{serial}/assign': 'Assign an inventory token to a user.',
  'POST /admin/api/tokens/{serial}/unassign': 'Take a token from its user, back to the inventory (deactivated).',
  'POST /admin/api/tokens/{serial}/disable': 'Disable a token: it refuses every code until enabled.',
  'POST /admin/api/tokens/{serial}/enable': 'Enable a disabled token.',
  'POST /admin/api/tokens/{serial}/unlock': 'Unlock a locked token and reset its failure count.',
  'POST /admin/api/tokens/{serial}/revoke': 'Revoke a token for good (lost, stolen, retired, compromised); its seed is destroyed, its history stays.',
  'POST /admin/api/tokens/{serial}/resync': 'Resynchronise a drifted token with two consecutive codes (searches 1000 steps either way).',
  'POST /admin/api/users/{upn}/temporary-code': "Issue a temporary code to a user who lost their token; shown once, valid as the user's policy allows.",
  'GET /admin/api/policies': 'Every security policy, with the users and groups it is assigned to.',
  'PUT /admin/api/policies/{id}': 'Create or change a security policy (the policy "default" applies to everyone without another).',
  'DELETE /admin/api/policies/{id}': 'Delete a security policy; its users and groups fall back to the next policy that applies.',
  'POST /admin/api/policies/{id}/assign': 'Assign a policy to a user ({ "user": upn }) or a group ({ "group": name }).',
  'POST /admin/api/policies/{id}/unassign': 'Remove a policy from a user or a group.',
  'GET /admin/api/users/{upn}/policy': "The user's effective policy and why it applies (user, group or default).",
  'POST /admin/api/users/{upn}/groups/{group}': 'Add a user to a group.',
  'DELETE /admin/api/users/{upn}/groups/{group}': 'Remove a user from a group.',
  'GET /audit/api/events': 'Timeline: ?serial=, stream=, user=, app=, type= (comma-separated), actor=, from=, to= (ISO times), after=, limit=.',
  'GET /audit/api/tokens/{serial}/state': "A token's state as of ?at= (ISO time) or ?position=, folded from its events.",
  'GET /audit/api/export': 'Stream events as ?format=jsonl|csv, filtered by from=, to=, stream=, type=; each with its position and hash.',
  'GET /audit/api/verify': 'Check every hash chain; a changed, removed or reordered event is reported with its stream and version.',
}

async function openapiPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tessera admin and audit API',
        version: '1',
        description: 'Token inventory, lifecycle and security policies (admin API keys) and the event log (auditor API keys). '
          + 'Send the key as "Authorization: Bearer tsk_...". A refused operation is a 4xx with a message and writes nothing.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
    hideUntagged: false,
    transform: ({ schema, url, route }) => {
      const path = url.replace(/:(\w+)/g, '{$1}')
      const methods = ([] as string[]).concat(route.method)
      const summary = methods.map((m) => SUMMARIES[`${m} ${path}`]).find(Boolean)
      return { schema: { ...schema, ...(summary ? { summary } : {}), hide: !url.startsWith('/admin/api') && !url.startsWith('/audit/api') } as never, url }
    },
  })
  app.get('/admin/api/openapi.json', { schema: { hide: true } as never }, async () => app.swagger())
}

export default fp(openapiPlugin, { name: 'openapi' })
