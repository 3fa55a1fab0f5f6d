// Identity brokering: primary login delegated to an upstream OpenID provider (a second oidc-provider
// on loopback, under another host name so cookies stay apart), linked to the local user, and the
// local Enter code step still required for mfa.
import t from 'tap'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import Provider from 'oidc-provider'
import * as oidc from 'openid-client'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { totpAt } from '../helpers/oathtool.js'
import { freePort } from '../helpers/net.js'
import { SEED_B32, SEED_HEX } from '../fixtures/rfc-vectors.js'


const [upstreamPort, port] = [await freePort(), await freePort()]
const UPSTREAM = `http://localhost:${upstreamPort}`
const BASE = `http://127.0.0.1:${port}`
const upstreamSecret = randomBytes(24).toString('base64url')

// The upstream: its development login pages accept any name; the account's e-mail is that name.
const upstream = new Provider(UPSTREAM, {
  clients: [{ client_id: 'tessera', client_secret: upstreamSecret, redirect_uris: [`${BASE}/login/upstream/callback`],
    grant_types: ['authorization_code'], response_types: ['code'] }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // A name starting with "unverified-" stands for an address the upstream has not checked.
  findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({
    sub: id, email: id.replace(/^unverified-/, ''), email_verified: !id.startsWith('unverified-') }) }),
  cookies: { keys: ['upstream test key'] },
  features: { devInteractions: { enabled: true } },
})
const upstreamServer = http.createServer(upstream.callback())
await new Promise<void>((resolve) => upstreamServer.listen(upstreamPort, '127.0.0.1', resolve))
t.teardown(() => new Promise<void>((resolve) => upstreamServer.close(() => resolve())))

const { app, database, clock } = await testApp(t, {
  PORT: String(port), PUBLIC_URL: BASE,
  TESSERA_UPSTREAM_ISSUER: UPSTREAM, TESSERA_UPSTREAM_CLIENT_ID: 'tessera', TESSERA_UPSTREAM_CLIENT_SECRET: upstreamSecret,
  TESSERA_UPSTREAM_NAME: 'Contoso ID',
})
await app.listen({ port, host: '127.0.0.1' })
const NOW = Math.floor(Date.now() / 1000)
clock.now = new Date(NOW * 1000)
const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
const alice = await addUser(app, 'alice@example.com')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key', code: totpAt(SEED_HEX, NOW) }, metadata())
const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })

/** Signs in at the upstream's development pages: a name, any password, then consent. */
async function upstreamLogin(agent: Agent, start: string, login: string) {
  let page = await agent.follow(await agent.get(start))
  for (let i = 0; i < 3 && page.url.startsWith(UPSTREAM); i++) {
    const action = new URL(/action="([^"]+)"/.exec(page.body)![1]!, page.url).toString()
    const form: Record<string, string> = /name="login"/.test(page.body) ? { prompt: 'login', login, password: 'any' } : { prompt: 'consent' }
    page = await agent.follow(await agent.post(action, form, { csrf: false }), 'https://rp.example.com')
  }
  return page
}

t.test('"Sign in with Contoso ID", then Enter code: an mfa ID token for the linked local user', async (t) => {
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  t.match(login.body, /Sign in with Contoso ID/)
  const link = /href="(\/login\/upstream\?returnTo=[^"]+)"/.exec(login.body)![1]!.replace(/&amp;/g, '&')
  const codePage = await upstreamLogin(agent, `${BASE}${link}`, 'alice@example.com')
  t.match(codePage.body, /<h1>Enter code<\/h1>/, 'back at Tessera, a code is still asked for mfa')
  clock.now = new Date((NOW + 30) * 1000)
  const done = await agent.follow(await agent.post(`${new URL(codePage.url).pathname}/code`, { code: totpAt(SEED_HEX, NOW + 30) }), 'https://rp.example.com')
  const tokens = await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true })
  t.equal(tokens.claims()!.sub, alice.userId, 'the local user')
  t.equal(tokens.claims()!.acr, LEVELS.mfa)

  const link2 = await sql<{ issuer: string; subject: string; user_id: string }>`select issuer, subject, user_id from upstream_links`.execute(database.db)
  t.same(link2.rows, [{ issuer: UPSTREAM, subject: 'alice@example.com', user_id: alice.userId }])
  const events = await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`user-${alice.userId}`} order by stream_version`.execute(database.db)
  t.ok(events.rows.some((e) => e.type === 'UserLinkedToUpstream' && e.data.subject === 'alice@example.com'))
  t.ok(events.rows.some((e) => e.type === 'UserSignedIn' && e.data.method === 'fed'))
})

t.test('an upstream identity with no local account is refused', async (t) => {
  const agent = new Agent(BASE)
  const page = await upstreamLogin(agent, `${BASE}/login/upstream`, 'stranger@example.com')
  t.equal(page.status, 403)
  t.match(page.body, /There is no Tessera account for stranger@example.com/)
  const links = await sql<{ n: string }>`select count(*) as n from upstream_links`.execute(database.db)
  t.equal(Number(links.rows[0]!.n), 1, 'no link was made')
})

t.test("an upstream e-mail the provider has not verified links nobody, even a known user's", async (t) => {
  const agent = new Agent(BASE)
  const page = await upstreamLogin(agent, `${BASE}/login/upstream`, 'unverified-alice@example.com')
  t.equal(page.status, 403)
  t.match(page.body, /has not verified your e-mail address/)
  const links = await sql<{ subject: string }>`select subject from upstream_links`.execute(database.db)
  t.same(links.rows.map((r) => r.subject), ['alice@example.com'], 'no new link')
})

t.test('the upstream settings must come together', async (t) => {
  const { loadConfig } = await import('../../fastify.config.js')
  t.throws(() => loadConfig({ TESSERA_UPSTREAM_ISSUER: UPSTREAM }), /TESSERA_UPSTREAM_ISSUER, TESSERA_UPSTREAM_CLIENT_ID and TESSERA_UPSTREAM_CLIENT_SECRET together/)
})
