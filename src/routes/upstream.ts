// Sign in with an upstream OpenID provider (identity brokering, as Keycloak does), through @fastify/oauth2:
// - authorization code flow with PKCE and state, the callback on PUBLIC_URL/login/upstream/callback;
// - the upstream ID token is checked (signature against its JWKS, issuer, audience, expiry) with jose;
// - its subject is linked to a local user (commands/upstream.ts); the gateway session then works as
//   after a password: a sign-in that asks for mfa still needs a code.
import oauth2, { type OAuth2Namespace } from '@fastify/oauth2'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { NoLocalAccount, UnverifiedEmail, upstreamUser } from '../commands/upstream.js'
import { recordSignIn } from '../commands/users.js'
import { startSession } from './guards.js'
import { findUser } from '../read-models/users.js'
import { noteChangesSinceLastSignIn } from './sign-in.js'
import { errorPage, safeReturnTo } from './render.js'

declare module 'fastify' {
  interface FastifyInstance {
    upstreamOAuth2?: OAuth2Namespace
  }
}

export default async function upstreamRoutes(app: FastifyInstance): Promise<void> {
  const upstream = app.config.upstream
  if (!upstream) return
  await app.register(oauth2, {
    name: 'upstreamOAuth2',
    scope: ['openid', 'email', 'profile'],
    credentials: { client: { id: upstream.clientId, secret: upstream.clientSecret } },
    callbackUri: `${app.config.publicUrl}/login/upstream/callback`,
    discovery: { issuer: upstream.issuer },
    pkce: 'S256',
    cookie: { secure: app.config.publicUrl.startsWith('https://'), sameSite: 'lax', path: '/' },
  })
  const metadata = await (await fetch(`${upstream.issuer}/.well-known/openid-configuration`)).json() as { issuer: string; jwks_uri: string; userinfo_endpoint?: string }
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri))

  const failed = (reply: FastifyReply, status: number, message: string) => errorPage(reply, status, "We couldn't sign you in", message)

  app.get<{ Querystring: { returnTo?: string } }>('/login/upstream', async (request, reply) => {
    const returnTo = safeReturnTo(request.query.returnTo)
    if (returnTo) request.session.set('returnTo', returnTo)
    const url = await app.upstreamOAuth2!.generateAuthorizationUri(request, reply)
    return reply.redirect(url, 303)
  })

  app.get('/login/upstream/callback', async (request, reply) => {
    let claims: { sub?: string; email?: unknown; email_verified?: unknown }
    try {
      const { token } = await app.upstreamOAuth2!.getAccessTokenFromAuthorizationCodeFlow(request, reply)
      const idToken = (token as { id_token?: string }).id_token
      if (!idToken) throw new Error('no ID token')
      claims = (await jwtVerify(idToken, jwks, { issuer: metadata.issuer, audience: upstream.clientId })).payload
      // Many providers put the e-mail in userinfo only (OpenID Connect Core 5.4); its sub must match.
      if (typeof claims.email !== 'string' && metadata.userinfo_endpoint) {
        const info = await (await fetch(metadata.userinfo_endpoint, { headers: { authorization: `Bearer ${token.access_token}` } })).json() as { sub?: string; email?: unknown }
        if (info.sub === claims.sub) claims = { ...claims, email: info.email, email_verified: (info as { email_verified?: unknown }).email_verified }
      }
    } catch (error) {
      request.log.warn({ err: { name: (error as Error).name, message: (error as Error).message } }, 'upstream sign-in failed')
      return failed(reply, 400, `${upstream.name} did not complete the sign-in. Try again.`)
    }
    let user
    try {
      user = await upstreamUser(app.commands, { issuer: metadata.issuer, subject: String(claims.sub),
        email: typeof claims.email === 'string' ? claims.email : null, emailVerified: claims.email_verified === true },
        app.eventMetadata(request, { type: 'system', id: 'upstream' }))
    } catch (error) {
      if (error instanceof NoLocalAccount || error instanceof UnverifiedEmail) return failed(reply, 403, error.message)
      throw error
    }
    const live = await findUser(app.db, user.id)
    if (!live || live.disabled) return failed(reply, 403, 'Your account is disabled. Contact your administrator.')
    const returnTo = safeReturnTo(request.session.get('returnTo')) ?? '/security-info'
    await startSession(request, app.db, user, app.commands.now().getTime(), /^\/interaction\/([^/]+)$/.exec(returnTo)?.[1])
    await noteChangesSinceLastSignIn(app, request, user.id)
    await recordSignIn(app.commands, user.id, 'fed', app.eventMetadata(request, { type: 'user', id: user.id }))
    return reply.redirect(returnTo, 303)
  })
}
