// With REDIS_URL, the provider's interactions, authorization codes, sessions, grants and access tokens are kept
// in Redis (a Redis of this test's own), refresh tokens and the grants they stand on in PostgreSQL; a code is
// redeemed once, a replay revokes the grant's tokens wherever they are; a password reset or a disabled account
// ends what is in Redis too, at once on this process and from the CLI within SIGN_IN_END_TTL_MS; and with
// Redis stopped, sign-ins go on through PostgreSQL.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { Redis } from 'ioredis'
import { registerClient } from '../../src/commands/clients.js'
import { resetPassword } from '../../src/commands/accounts.js'
import { setUserDisabled } from '../../src/commands/users.js'
import { SIGN_IN_END_TTL_MS } from '../../src/oidc/sign-in-ends.js'
import { tessera } from '../helpers/cli.js'
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
await addUser(app, 'ines@example.com')
await addUser(app, 'otto@example.com')
await addUser(app, 'pia@example.com')
const payroll = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })
const probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })
probe.on('error', () => {})
await probe.connect()
t.teardown(() => probe.disconnect())

const inPostgres = async (type: string) => Number((await sql<{ n: string }>`select count(*) as n from oidc_payloads where type = ${type}`.execute(database.db)).rows[0]!.n)
/** Keys of a model in Redis; -1 while it is down. */
const inRedis = async (type: string) => (await probe.keys(`tessera-oidc:${type}:*`).catch(() => null))?.filter((k) => !k.includes(':consumed:') && !k.includes(':uid:')).length ?? -1

let interactionsSeen = 0
/**
 * A sign-in up to the callback: the authorization code and what the exchange needs. With `agent`, in that
 * browser (signing in only when it shows the sign-in page).
 */
async function codeFor(options: { upn?: string; agent?: Agent; scope?: string; prompt?: string } = {}) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(payroll, { redirect_uri: CALLBACK, scope: options.scope ?? 'openid email', nonce, state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...(options.prompt ? { prompt: options.prompt } : {}) })
  const agent = options.agent ?? new Agent(BASE)
  let cb = await agent.follow(await agent.get(url.toString()), CALLBACK)
  if (!cb.location?.startsWith(CALLBACK)) {
    interactionsSeen = await inRedis('Interaction')
    cb = await agent.follow(await agent.post(`${new URL(cb.url).pathname}/login`, { upn: options.upn ?? 'rhea@example.com', password: 'correct horse battery' }), CALLBACK)
  }
  if (!cb.location?.startsWith(CALLBACK)) throw new Error(`no callback: ${cb.status} ${cb.body.slice(0, 200)}`)
  return { callback: new URL(cb.location), verifier, nonce, state }
}
const exchange = (c: Awaited<ReturnType<typeof codeFor>>) =>
  oidc.authorizationCodeGrant(payroll, c.callback, { pkceCodeVerifier: c.verifier, expectedNonce: c.nonce, expectedState: c.state, idTokenExpected: true })
/** Whether the browser's provider session signs it in without a page: the gateway's own session is set aside. */
async function providerSessionSignsIn(agent: Agent) {
  agent.forget(/^tessera_session/)
  const url = oidc.buildAuthorizationUrl(payroll, { redirect_uri: CALLBACK, scope: 'openid', nonce: oidc.randomNonce(), state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' })
  const end = await agent.follow(await agent.get(url.toString()), CALLBACK)
  if (end.location?.startsWith(CALLBACK)) return true
  if (end.status === 200 && end.body.includes('<h1>Sign in</h1>')) return false
  throw new Error(`neither the callback nor the sign-in page: ${end.status} at ${end.url}`)
}

t.test('interactions, codes, sessions, grants and access tokens are kept in Redis, none in PostgreSQL', async (t) => {
  const c = await codeFor()
  t.ok(interactionsSeen >= 1, 'the interaction was in Redis while the sign-in page was shown')
  t.equal(await inRedis('AuthorizationCode'), 1, 'the code is in Redis')
  const tokens = await exchange(c)
  t.equal((await oidc.fetchUserInfo(payroll, tokens.access_token, tokens.claims()!.sub)).email, 'rhea@example.com')
  t.notOk(tokens.refresh_token, 'no refresh token without offline_access')
  for (const type of ['Session', 'Grant', 'AccessToken']) t.ok(await inRedis(type) >= 1, `${type} in Redis`)
  for (const type of ['Interaction', 'AuthorizationCode', 'Session', 'Grant', 'AccessToken']) t.equal(await inPostgres(type), 0, `no ${type} in PostgreSQL`)
})

t.test('refresh tokens and the grants they stand on are kept in PostgreSQL, so a Redis restart keeps them', async (t) => {
  const grantsBefore = await inPostgres('Grant')
  const c = await codeFor({ scope: 'openid offline_access', prompt: 'consent' })
  const tokens = await exchange(c)
  t.ok(tokens.refresh_token, 'a refresh token with offline_access')
  t.equal(await inPostgres('RefreshToken'), 1)
  t.ok(await inPostgres('Grant') > grantsBefore, 'its grant in PostgreSQL')
  const grantId = (await sql<{ grant_id: string }>`select grant_id from oidc_payloads where type = 'RefreshToken'`.execute(database.db)).rows[0]!.grant_id
  t.equal(await probe.exists(`tessera-oidc:Grant:${grantId}`), 0, 'and not in Redis, where an older copy would be read first')
  await probe.flushall()
  const refreshed = await oidc.refreshTokenGrant(payroll, tokens.refresh_token!)
  t.ok(refreshed.access_token, 'refreshed after Redis lost everything')
  t.equal((await oidc.fetchUserInfo(payroll, refreshed.access_token, tokens.claims()!.sub)).sub, tokens.claims()!.sub, 'and its access token is good')
})

t.test('a password reset on this process ends, at once, the session, grant, tokens and code kept in Redis', async (t) => {
  const agent = new Agent(BASE)
  const tokens = await exchange(await codeFor({ upn: 'ines@example.com', agent }))
  const sub = tokens.claims()!.sub
  t.equal((await oidc.fetchUserInfo(payroll, tokens.access_token, sub)).email, 'ines@example.com')
  const pending = await codeFor({ upn: 'ines@example.com', agent })
  t.equal(await providerSessionSignsIn(agent), true, 'before: the provider session alone signs the browser in')
  await resetPassword(app.commands, { upn: 'ines@example.com' }, metadata())
  await t.rejects(oidc.fetchUserInfo(payroll, tokens.access_token, sub), 'the access token is refused')
  await t.rejects(exchange(pending), { error: 'invalid_grant' } as unknown as Error, 'a code issued before is refused: its grant ended')
  t.equal(await providerSessionSignsIn(agent), false, 'the provider session no longer signs in')
  t.equal(await inPostgres('Session'), 0, 'nothing of it went to PostgreSQL on the way')
})

t.test('a disabled account: what Redis keeps is refused; enabled again, a new sign-in works at once', async (t) => {
  const agent = new Agent(BASE)
  const tokens = await exchange(await codeFor({ upn: 'otto@example.com', agent }))
  const sub = tokens.claims()!.sub
  await setUserDisabled(app.commands, { upn: 'otto@example.com', disabled: true }, metadata())
  await t.rejects(oidc.fetchUserInfo(payroll, tokens.access_token, sub), 'the access token is refused')
  await setUserDisabled(app.commands, { upn: 'otto@example.com', disabled: false }, metadata())
  await t.rejects(oidc.fetchUserInfo(payroll, tokens.access_token, sub), 'and stays refused once the account is enabled')
  t.equal(await providerSessionSignsIn(agent), false, 'the old provider session does not sign in')
  const again = await exchange(await codeFor({ upn: 'otto@example.com', agent: new Agent(BASE) }))
  t.equal((await oidc.fetchUserInfo(payroll, again.access_token, sub)).email, 'otto@example.com', 'a new sign-in, made after the end, works')
})

t.test('a password reset from the CLI (another process, without Redis) ends what Redis keeps within the cache time', async (t) => {
  const agent = new Agent(BASE)
  const tokens = await exchange(await codeFor({ upn: 'pia@example.com', agent }))
  const sub = tokens.claims()!.sub
  t.equal((await oidc.fetchUserInfo(payroll, tokens.access_token, sub)).email, 'pia@example.com', 'read once, so this process keeps the user\'s last end')
  const run = await tessera(['users', 'reset-password', 'pia@example.com'], { DATABASE_URL: database.url, REDIS_URL: '' })
  t.equal(run.code, 0, run.stderr)
  await new Promise((r) => setTimeout(r, SIGN_IN_END_TTL_MS + 200))
  await t.rejects(oidc.fetchUserInfo(payroll, tokens.access_token, sub), 'the access token is refused')
  t.equal(await providerSessionSignsIn(agent), false, 'the provider session no longer signs in')
})

t.test('what would outlive a password reset is refused: a session under a new id, a finished interaction, a copy in PostgreSQL', async (t) => {
  await addUser(app, 'vera@example.com')
  const provider = await app.oidcProvider()
  const sessions = (provider.Session as unknown as { adapter: { find(id: string): Promise<unknown>; upsert(id: string, payload: unknown, expiresIn: number): Promise<void> } }).adapter
  const agent = new Agent(BASE)
  await exchange(await codeFor({ upn: 'vera@example.com', agent }))
  const keys = await probe.keys('tessera-oidc:Session:*')
  const mine = []
  for (const key of keys.filter((k) => !k.includes(':uid:'))) {
    const raw = (await probe.get(key))!
    if (raw.includes('"vera') || raw.includes((await sql<{ id: string }>`select id from users where upn = 'vera@example.com'`.execute(database.db)).rows[0]!.id)) mine.push({ key, raw })
  }
  t.equal(mine.length, 1, "vera's provider session is in Redis")
  const json = mine[0]!.raw.slice(mine[0]!.raw.indexOf('|') + 1)
  // A sign-in left just before its last redirect (the interaction holds the finished login).
  const verifier = oidc.randomPKCECodeVerifier()
  const url = oidc.buildAuthorizationUrl(payroll, { redirect_uri: CALLBACK, scope: 'openid', nonce: oidc.randomNonce(), state: oidc.randomState(),
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', prompt: 'login' })
  const other = new Agent(BASE)
  const login = await other.follow(await other.get(url.toString()))
  const posted = await other.post(`${new URL(login.url).pathname}/login`, { upn: 'vera@example.com', password: 'correct horse battery' })
  const finished = await other.get(posted.location!)
  t.match(finished.location, /\/oidc\/auth\//, 'the login is finished; the browser has not come back to the provider yet')
  // Sign-in times are in seconds: the reset comes in a later second than the sign-ins.
  await new Promise((r) => setTimeout(r, 1100))
  await resetPassword(app.commands, { upn: 'vera@example.com' }, metadata())

  // A process that had not seen the end yet saved the session under a new id, as signing out of one application
  // does: a write after the end, which keeps the time the session (its uid) was first made.
  await sessions.upsert('renamed-after-end', JSON.parse(json), 600)
  t.match(await probe.get('tessera-oidc:Session:renamed-after-end'), /^\d+\|/, 'written under the new id')
  t.equal(await sessions.find('renamed-after-end'), undefined, 'a session renamed after the end keeps the time it was made, and is refused')
  const back = await other.follow(finished, CALLBACK)
  t.notOk(back.location?.startsWith(CALLBACK), `the interaction finished before the end gives no code (${back.status})`)
  // A copy in PostgreSQL (written during a Redis outage by a process that had not seen the end).
  await sql`insert into oidc_payloads (type, id, payload, expires_at) values ('Session', 'copy-in-postgres', ${json}::jsonb, now() + interval '1 hour')`.execute(database.db)
  t.equal(await sessions.find('copy-in-postgres'), undefined, 'a copy in PostgreSQL is refused too')
  t.equal(await sessions.find('tessera-oidc:Session:x'), undefined, 'an id that would name another key is not looked up')
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
