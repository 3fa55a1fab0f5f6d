// With REDIS_URL, the provider's interactions and authorization codes are kept in Redis (a Redis of this
// test's own), the rest in PostgreSQL; a code is redeemed once, a replay revokes the grant's tokens wherever
// they are; and with Redis stopped, sign-ins go on through PostgreSQL.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { Redis } from 'ioredis'
import { registerClient } from '../../src/commands/clients.js'
import { addUser, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { freePort } from '../helpers/net.js'
import { ownRedis } from '../helpers/redis-server.js'

const redis = await ownRedis(t)
const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE, REDIS_URL: redis.url })
await app.listen({ port, host: '127.0.0.1' })
const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
await addUser(app, 'rhea@example.com')
const payroll = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })
const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })
probe.on('error', () => {})
await probe.connect()
t.teardown(() => probe.disconnect())

const inPostgres = async (type: string) => Number((await sql<{ n: string }>`select count(*) as n from oidc_payloads where type = ${type}`.execute(database.db)).rows[0]!.n)
/** Keys of a model in Redis; -1 while it is down. */
const inRedis = async (type: string) => (await probe.keys(`tessera-oidc:${type}:*`).catch(() => null))?.filter((k) => !k.includes(':consumed:') && !k.includes(':uid:')).length ?? -1

let interactionsSeen = 0
/** A sign-in at pwd up to the callback: the authorization code and what the exchange needs. */
async function codeFor() {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(payroll, { redirect_uri: CALLBACK, scope: 'openid email', nonce, state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const agent = new Agent(BASE)
  const login = await agent.follow(await agent.get(url.toString()))
  interactionsSeen = await inRedis('Interaction')
  const cb = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'rhea@example.com', password: 'correct horse battery' }), CALLBACK)
  if (!cb.location?.startsWith(CALLBACK)) throw new Error(`no callback: ${cb.status} ${cb.body.slice(0, 200)}`)
  return { callback: new URL(cb.location), verifier, nonce, state }
}
const exchange = (c: Awaited<ReturnType<typeof codeFor>>) =>
  oidc.authorizationCodeGrant(payroll, c.callback, { pkceCodeVerifier: c.verifier, expectedNonce: c.nonce, expectedState: c.state, idTokenExpected: true })

t.test('interactions and codes are kept in Redis; sessions, grants and tokens in PostgreSQL', async (t) => {
  const c = await codeFor()
  t.ok(interactionsSeen >= 1, 'the interaction was in Redis while the sign-in page was shown')
  t.equal(await inRedis('AuthorizationCode'), 1, 'the code is in Redis')
  t.equal(await inPostgres('Interaction'), 0, 'not in PostgreSQL')
  t.equal(await inPostgres('AuthorizationCode'), 0)
  const tokens = await exchange(c)
  t.equal((await oidc.fetchUserInfo(payroll, tokens.access_token, tokens.claims()!.sub)).email, 'rhea@example.com')
  t.ok(await inPostgres('Session') >= 1, 'the session is in PostgreSQL, where a password reset ends it')
  t.ok(await inPostgres('Grant') >= 1)
  t.ok(await inPostgres('AccessToken') >= 1)
})

t.test('a code is redeemed once; a replay revokes the access token it gave', async (t) => {
  const c = await codeFor()
  const tokens = await exchange(c)
  const info = await oidc.fetchUserInfo(payroll, tokens.access_token, tokens.claims()!.sub)
  t.equal(info.email, 'rhea@example.com')
  await t.rejects(exchange(c), { error: 'invalid_grant' } as unknown as Error, 'the replay is refused')
  await t.rejects(oidc.fetchUserInfo(payroll, tokens.access_token, tokens.claims()!.sub), 'the first exchange\'s access token is revoked')

  const raced = await codeFor()
  const results = await Promise.allSettled(Array.from({ length: 4 }, () => exchange(raced)))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'of four requests racing with one code, exactly one gets tokens')
})

t.test('Redis stopped: sign-ins go on through PostgreSQL, and after it is back, through Redis again', async (t) => {
  await redis.stop()
  const c = await codeFor()
  t.ok(await inPostgres('AuthorizationCode') >= 1, 'the code went to PostgreSQL')
  const tokens = await exchange(c)
  t.ok(tokens.claims()!.sub)
  await t.rejects(exchange(c), { error: 'invalid_grant' } as unknown as Error, 'and is redeemed once there too')
  await redis.start()
  // Both the gateway's connection and this test's reconnect on their own.
  for (let i = 0; i < 100 && (await inRedis('AuthorizationCode')) < 0; i++) await new Promise((r) => setTimeout(r, 100))
  await new Promise((r) => setTimeout(r, 1000))
  const after = await codeFor()
  t.equal(await inRedis('AuthorizationCode'), 1, 'codes are kept in Redis again')
  t.ok((await exchange(after)).claims()!.sub)
})
