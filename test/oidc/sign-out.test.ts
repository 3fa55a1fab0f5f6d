// Signing out of Tessera ends everything for that browser: the gateway's session (every copy of its
// cookie), the OpenID provider's session and the grants it holds. Sessions have an absolute lifetime.
// Cookies are Secure under an https public URL, with or without a proxy's X-Forwarded-Proto.
import t from 'tap'
import * as oidc from 'openid-client'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { totpAt } from '../helpers/oathtool.js'
import { freePort } from '../helpers/net.js'
import { SEED_HEX, SEED_B32 } from '../fixtures/rfc-vectors.js'

const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, clock } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE })
await app.listen({ port, host: '127.0.0.1' })
let now = Math.floor(Date.now() / 1000)
clock.now = new Date(now * 1000)

const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
const alice = await addUser(app, 'alice@example.com')
const bob = await addUser(app, 'bob@example.com')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key fob', code: totpAt(SEED_HEX, now) }, metadata())
const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })

async function authorize(agent: Agent, acr: string) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: acr, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const page = await agent.follow(await agent.get(url.toString()), CALLBACK)
  return { page, verifier, nonce }
}

async function exchange(a: { page: { location: string | null }; verifier: string; nonce: string }) {
  return oidc.authorizationCodeGrant(config, new URL(a.page.location!), { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, idTokenExpected: true })
}

t.test("after /logout the next person at the browser gets nothing of the previous user's", async (t) => {
  const agent = new Agent(BASE)
  const first = await authorize(agent, LEVELS.mfa)
  const codePage = await agent.follow(await agent.post(`${new URL(first.page.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }))
  now += 30
  clock.now = new Date(now * 1000)
  const done = await agent.follow(await agent.post(`${new URL(codePage.url).pathname}/code`, { code: totpAt(SEED_HEX, now) }), CALLBACK)
  const tokens = await exchange({ ...first, page: done })
  t.equal(tokens.claims()!.sub, alice.userId, 'alice signed in at mfa')
  t.ok((await oidc.fetchUserInfo(config, tokens.access_token, alice.userId)).sub, 'her access token works')

  // Single sign-on works before the sign-out: a new request goes straight back to the application.
  const sso = await authorize(agent, LEVELS.pwd)
  t.match(sso.page.location, /^https:\/\/rp\.example\.com\/callback\?code=/, 'signed in without a password before sign-out')

  await agent.get('/security-info')
  const out = await agent.post('/logout', {})
  t.equal(out.status, 303)
  const login = await agent.follow(out)
  t.match(login.body, /You have signed out\./, 'the sign-in page says so')

  const after = await authorize(agent, LEVELS.mfa)
  t.equal(after.page.location, null, 'no code goes back to the application')
  t.match(after.page.body, /<h1>Sign in<\/h1>/, 'the next person is asked for a password')
  await t.rejects(oidc.fetchUserInfo(config, tokens.access_token, alice.userId), 'the grant and its access token are revoked')

  // Someone else signs in at this browser: the application gets them, never alice.
  const codeless = await agent.follow(await agent.post(`${new URL(after.page.url).pathname}/login`, { upn: 'bob@example.com', password: 'correct horse battery' }))
  t.match(codeless.body, /<h1>Add a sign-in method<\/h1>/, 'bob, who has no token, is offered to add one: no mfa from alice')
  const pwd = await authorize(agent, LEVELS.pwd)
  const bobTokens = await exchange(pwd)
  t.equal(bobTokens.claims()!.sub, bob.userId)
  t.equal(bobTokens.claims()!.acr, LEVELS.pwd)
})

t.test('a copied session cookie is refused after sign-out, and a session ends after 8 hours however active', async (t) => {
  const agent = new Agent(BASE)
  await agent.get('/login')
  await agent.post('/login', { upn: 'alice@example.com', password: 'correct horse battery' })
  const info = await agent.get('/security-info')
  t.equal(info.status, 200)
  const copy = agent.copy()
  t.equal((await copy.get('/security-info')).status, 200, 'the copy works while the session lives')
  await agent.post('/logout', {})
  const refused = await copy.get('/security-info')
  t.equal(refused.status, 303, 'the copied cookie no longer signs anyone in')
  t.equal(new URL(refused.location!).pathname, '/login')

  const busy = new Agent(BASE)
  await busy.get('/login')
  await busy.post('/login', { upn: 'alice@example.com', password: 'correct horse battery' })
  const start = now
  for (const hours of [2, 4, 6, 7.9]) {
    clock.now = new Date((start + hours * 3600) * 1000)
    t.equal((await busy.get('/security-info')).status, 200, `still signed in after ${hours} hours of activity`)
  }
  clock.now = new Date((start + 8 * 3600 + 1) * 1000)
  const expired = await busy.get('/security-info')
  t.equal(expired.status, 303, 'activity does not extend a session past 8 hours')
  clock.now = new Date(now * 1000)
})

t.test('under an https public URL every cookie is Secure, with no X-Forwarded-Proto from a proxy', async (t) => {
  const secure = await testApp(t, { PUBLIC_URL: 'https://gateway.example.com' })
  await registerClient(secure.app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
  await addUser(secure.app, 'carol@example.com')
  const params = new URLSearchParams({ client_id: 'payroll', redirect_uri: CALLBACK, response_type: 'code', scope: 'openid',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', nonce: 'n' })
  const auth = await secure.app.inject({ method: 'GET', url: `/oidc/auth?${params}` })
  t.equal(auth.statusCode, 303)
  const providerCookies = ([] as string[]).concat(auth.headers['set-cookie'] as string[] ?? [])
  t.ok(providerCookies.length > 0, 'the provider sets its interaction cookies')
  for (const c of providerCookies) t.match(c, /;\s*secure/i, `${c.split('=')[0]} is Secure`)
  const form = await secure.app.inject({ method: 'GET', url: '/login' })
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!
  const jar = ([] as string[]).concat(form.headers['set-cookie'] as string[] ?? []).map((c) => c.split(';')[0]).join('; ')
  const signIn = await secure.app.inject({ method: 'POST', url: '/login', headers: { cookie: jar, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: csrf, upn: 'carol@example.com', password: 'correct horse battery' }).toString() })
  t.equal(signIn.statusCode, 303)
  const gatewayCookies = ([] as string[]).concat(signIn.headers['set-cookie'] as string[])
  t.ok(gatewayCookies.some((c) => c.startsWith('tessera_session=')) && gatewayCookies.some((c) => c.startsWith('tessera_device=')))
  for (const c of gatewayCookies) t.match(c, /;\s*secure/i, `${c.split('=')[0]} is Secure`)
})

t.test("signing out through the provider (RP-initiated logout) ends the gateway's session too, for every copy", async (t) => {
  const agent = new Agent(BASE)
  await agent.get('/login')
  await agent.post('/login', { upn: 'alice@example.com', password: 'correct horse battery' })
  const sso = await authorize(agent, LEVELS.pwd)
  t.match(sso.page.location, /^https:\/\/rp\.example\.com\/callback\?code=/, 'a provider session exists')
  const copy = agent.copy()
  const confirm = await agent.get('/oidc/session/end?client_id=payroll')
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)?.[1]
  t.ok(xsrf, 'the provider asks to confirm')
  const done = await agent.follow(await agent.post('/oidc/session/end/confirm', { xsrf: xsrf!, logout: 'yes' }, { csrf: false }))
  t.match(done.body, /You have signed out/)
  // The gateway's row is ended from the provider's event: give it its round trip.
  let status = 0
  for (let i = 0; i < 50 && status !== 303; i++) {
    status = (await copy.get('/security-info')).status
    if (status !== 303) await new Promise((r) => setTimeout(r, 20))
  }
  t.equal(status, 303, 'a copy of the gateway cookie no longer signs anyone in')
})
