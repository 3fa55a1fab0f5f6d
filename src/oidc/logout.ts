// Signing out of the gateway ends the OpenID provider's session in this browser too, the way the
// provider's own RP-initiated logout does (oidc-provider lib/actions/end_session.js): every grant the
// session holds is revoked with its tokens, the session is destroyed and its cookie cleared. Otherwise
// the next person at this browser would get the previous user's ID token without a password.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export async function endProviderSession(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const provider = await app.oidcProvider()
  const ctx = (provider as unknown as { createContext(req: unknown, res: unknown): unknown }).createContext(request.raw, reply.raw)
  const session = await provider.Session.get(ctx as never)
  if (session.accountId || session.authorizations) {
    const models = [provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode]
    await Promise.all(Object.values(session.authorizations ?? {}).map(async ({ grantId }) => {
      if (!grantId) return
      await Promise.all(models.map((model) => model.revokeByGrantId(grantId)))
      const grant = await provider.Grant.find(grantId)
      await grant?.destroy()
    }))
    await session.destroy()
  }
  // The provider's cookies live under its mount path; clear them whether or not a session was found.
  const secure = app.config.publicUrl.startsWith('https://')
  for (const name of [provider.cookieName('session'), `${provider.cookieName('session')}.sig`]) {
    reply.setCookie(name, '', { path: '/', expires: new Date(0), maxAge: 0, httpOnly: true, sameSite: 'lax', secure })
  }
}
