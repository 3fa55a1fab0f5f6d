// Step-up login for relying applications, with openid-client as the relying application.
import t from 'tap'
import pg from 'pg'
import { sql } from 'kysely'
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
const { app, database, clock } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE })
await app.listen({ port, host: '127.0.0.1' })
const NOW = Math.floor(Date.now() / 1000)
clock.now = new Date(NOW * 1000)

const CALLBACK = 'https://rp.example.com/callback'
const confidential = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
await registerClient(app.commands, { clientId: 'spa', name: 'Team board', redirectUris: ['http://localhost:5173/cb'], public: true }, metadata())
const alice = await addUser(app, 'alice@example.com', 'correct horse battery', 'Alice Example')
const nomethod = await addUser(app, 'nomethod@example.com', 'correct horse battery', 'No Method')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key fob', code: totpAt(SEED_HEX, NOW) }, metadata())

const issuer = new URL(`${BASE}/oidc`)
const payroll = await oidc.discovery(issuer, 'payroll', { client_secret: confidential.secret! }, oidc.ClientSecretBasic(confidential.secret!), { execute: [oidc.allowInsecureRequests] })
const spa = await oidc.discovery(issuer, 'spa', {}, oidc.None(), { execute: [oidc.allowInsecureRequests] })

/** The SQL texts this process sends to PostgreSQL until stop(). */
function recordStatements(): { stop(): string[] } {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }
  const original = proto.query
  const texts: string[] = []
  proto.query = function recorded(this: unknown, ...args: unknown[]) {
    const q = args[0]
    texts.push(typeof q === 'string' ? q : String((q as { text?: string }).text ?? ''))
    return original.apply(this, args)
  }
  return { stop: () => ((proto.query = original), texts) }
}

let step = 0
/** A fresh code for each verification: the next time step, as a token shows it. */
function nextCode(): string {
  step++
  clock.now = new Date((NOW + step * 30) * 1000)
  return totpAt(SEED_HEX, NOW + step * 30)
}

async function authorize(config: oidc.Configuration, params: Record<string, string>, redirectUri = CALLBACK) {
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const state = oidc.randomState()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid email profile', nonce, state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...params,
  })
  return { url, verifier, nonce, state }
}

async function exchange(config: oidc.Configuration, callback: string, a: { verifier: string; nonce: string; state: string }) {
  return oidc.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state, idTokenExpected: true })
}

async function otpEvents() {
  return (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = 'token-8659623756140' and type like 'Otp%' order by stream_version`.execute(database.db)).rows
}

t.test('discovery and JWKS publish one ES256 key and the three levels', async (t) => {
  const meta = payroll.serverMetadata()
  t.equal(meta.issuer, `${BASE}/oidc`)
  t.same(meta.acr_values_supported, [LEVELS.pwd, LEVELS.mfa, LEVELS.mfaUnrestricted])
  t.same(meta.code_challenge_methods_supported, ['S256'])
  const jwks = await (await fetch(meta.jwks_uri!)).json()
  t.equal(jwks.keys.length, 1)
  t.match(jwks.keys[0], { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
  t.notOk('d' in jwks.keys[0], 'no private part is published')
})

t.test('mfa: password, then Enter code, then an ID token with acr, amr and auth_time', async (t) => {
  const agent = new Agent(BASE)
  const a = await authorize(payroll, { acr_values: LEVELS.mfa })
  const login = await agent.follow(await agent.get(a.url.toString()))
  t.match(login.body, /<h1>Sign in<\/h1>/)
  t.match(login.body, /to continue to <strong>Payroll<\/strong>/)
  const wrong = await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'wrong password' })
  t.equal(wrong.status, 401)
  t.match(wrong.body, /Your account or password is incorrect/)
  const codePage = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }))
  t.match(codePage.body, /<h1>Enter code<\/h1>/)
  t.match(codePage.body, /Enter the code displayed on your authentication token/)
  const bad = await agent.post(`${new URL(codePage.url).pathname}/code`, { code: '000000' })
  t.equal(bad.status, 422)
  t.match(bad.body, /That code didn&#39;t work/)
  const callback = await agent.follow(await agent.post(`${new URL(codePage.url).pathname}/code`, { code: nextCode() }), CALLBACK)
  t.match(callback.location, /^https:\/\/rp\.example\.com\/callback\?code=/)

  const tokens = await exchange(payroll, callback.location!, a)
  const claims = tokens.claims()!
  t.equal(claims.acr, LEVELS.mfa)
  t.same(claims.amr, ['pwd', 'otp', 'hwk', 'mfa'])
  t.equal(typeof claims.auth_time, 'number')
  t.equal(claims.sub, alice.userId)
  t.equal(claims.nonce, a.nonce)
  const events = await otpEvents()
  t.same(events.slice(-2).map((e) => [e.type, e.data.reason ?? e.data.level]), [['OtpRejected', 'wrong'], ['OtpVerified', LEVELS.mfa]])
  t.equal(events[events.length - 1]!.data.relyingApplication, 'payroll')
  t.equal(events[events.length - 1]!.metadata.relyingApplication, 'payroll')
  const userinfo = await oidc.fetchUserInfo(payroll, tokens.access_token, claims.sub)
  t.equal(userinfo.email, 'alice@example.com')
})

t.test('signed in at pwd, asked for mfa: only the Enter code page (step-up)', async (t) => {
  const agent = new Agent(BASE)
  const first = await authorize(payroll, { acr_values: LEVELS.pwd })
  const login = await agent.follow(await agent.get(first.url.toString()))
  const back = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }), CALLBACK)
  const pwd = (await exchange(payroll, back.location!, first)).claims()!
  t.equal(pwd.acr, LEVELS.pwd)
  t.same(pwd.amr, ['pwd'])

  const second = await authorize(payroll, { acr_values: LEVELS.mfa })
  const page = await agent.follow(await agent.get(second.url.toString()))
  t.match(page.body, /<h1>Enter code<\/h1>/, 'no password asked again')
  const done = await agent.follow(await agent.post(`${new URL(page.url).pathname}/code`, { code: nextCode() }), CALLBACK)
  const mfa = (await exchange(payroll, done.location!, second)).claims()!
  t.equal(mfa.acr, LEVELS.mfa)
  t.equal(mfa.sub, pwd.sub)
  t.ok((mfa.auth_time as number) >= (pwd.auth_time as number))

  const third = await authorize(payroll, { acr_values: LEVELS.mfa, prompt: 'login' })
  const forced = await agent.follow(await agent.get(third.url.toString()))
  t.match(forced.body, /<h1>Sign in<\/h1>/, 'prompt=login asks for the password again')
})

t.test("signed in to the gateway, asked at pwd: its session vouches, and the interaction is finished without reading it again or the client's name", async (t) => {
  // Another user than alice: the sign-in post is limited to 10 a minute per user.
  const agent = new Agent(BASE)
  const first = await authorize(payroll, { acr_values: LEVELS.pwd })
  const login = await agent.follow(await agent.get(first.url.toString()))
  const back = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'nomethod@example.com', password: 'correct horse battery' }), CALLBACK)
  await exchange(payroll, back.location!, first)

  // Without the provider's session, the provider opens an interaction; the gateway's session answers it.
  agent.forget(/^_(session|interaction)/)
  const second = await authorize(payroll, { acr_values: LEVELS.pwd })
  const toInteraction = await agent.get(second.url.toString())
  t.match(toInteraction.location, /\/interaction\//)
  const statements = recordStatements()
  const finished = await agent.get(toInteraction.location!)
  const sent = statements.stop()
  t.equal(finished.status, 303, 'no page: the interaction is finished at once')
  t.same(sent.filter((s) => /oidc_payloads/.test(s)).map((s) => s.replace(/\s+/g, ' ').trim().split(' ')[0]), ['select', 'insert'],
    'one read of the interaction, one write of its result')
  t.notOk(sent.some((s) => /clients/.test(s)), "the client's name is not read when no page shows it")
  const done = await agent.follow(finished, CALLBACK)
  const claims = (await exchange(payroll, done.location!, second)).claims()!
  t.equal(claims.sub, nomethod.userId)
  t.equal(claims.acr, LEVELS.pwd)
})

t.test('asked for mfa without a method, the user is offered to add one', async (t) => {
  const agent = new Agent(BASE)
  const a = await authorize(payroll, { acr_values: LEVELS.mfa })
  const login = await agent.follow(await agent.get(a.url.toString()))
  const page = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'nomethod@example.com', password: 'correct horse battery' }))
  t.match(page.body, /<h1>Add a sign-in method<\/h1>/)
  const add = await agent.get(`${new URL(page.url).pathname}/add-method`)
  t.equal(new URL(add.location!).pathname, '/security-info/add')
})

t.test('a public client uses PKCE without a secret', async (t) => {
  const agent = new Agent(BASE)
  const a = await authorize(spa, { acr_values: LEVELS.mfa }, 'http://localhost:5173/cb')
  const login = await agent.follow(await agent.get(a.url.toString()))
  const code = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }))
  const cb = await agent.follow(await agent.post(`${new URL(code.url).pathname}/code`, { code: nextCode() }), 'http://localhost:5173/cb')
  const tokens = await oidc.authorizationCodeGrant(spa, new URL(cb.location!), { pkceCodeVerifier: a.verifier, expectedNonce: a.nonce, expectedState: a.state })
  t.equal(tokens.claims()!.acr, LEVELS.mfa)

  const noPkce = new URL(`${BASE}/oidc/auth?client_id=spa&response_type=code&scope=openid&redirect_uri=${encodeURIComponent('http://localhost:5173/cb')}`)
  const refused = await agent.get(noPkce.toString())
  t.match(refused.location, /error=invalid_request/)
  t.match(decodeURIComponent(refused.location!), /PKCE/)
})

t.test('a wrong redirect URI is refused on a page, without redirecting', async (t) => {
  const a = await authorize(payroll, {}, 'https://evil.example.com/callback')
  const res = await new Agent(BASE).get(a.url.toString())
  t.equal(res.status, 400)
  t.equal(res.location, null)
  t.match(res.body, /The application asked to return to an address it has not registered\./)
})

t.test('an authorization code is redeemed once; a replay and a wrong PKCE verifier are refused', async (t) => {
  async function codeFor() {
    const agent = new Agent(BASE)
    const a = await authorize(payroll, {})
    const login = await agent.follow(await agent.get(a.url.toString()))
    const cb = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }), CALLBACK)
    return { a, callback: cb.location! }
  }
  const first = await codeFor()
  await exchange(payroll, first.callback, first.a)
  await t.rejects(exchange(payroll, first.callback, first.a), { error: 'invalid_grant' } as unknown as Error, 'a replayed code is refused')

  const second = await codeFor()
  await t.rejects(exchange(payroll, second.callback, { ...second.a, verifier: oidc.randomPKCECodeVerifier() }), { error: 'invalid_grant' } as unknown as Error,
    'a tampered verifier is refused')

  const third = await codeFor()
  const raced = await Promise.allSettled(Array.from({ length: 4 }, () => exchange(payroll, third.callback, third.a)))
  t.equal(raced.filter((r) => r.status === 'fulfilled').length, 1, 'of four requests racing with one code, exactly one gets tokens')
})

t.test('two requests racing with the same OTP code: exactly one is accepted', async (t) => {
  const agents = [new Agent(BASE), new Agent(BASE)]
  const pages: { url: string }[] = []
  for (const agent of agents) {
    const a = await authorize(payroll, { acr_values: LEVELS.mfa })
    const login = await agent.follow(await agent.get(a.url.toString()))
    pages.push(await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' })))
  }
  const code = nextCode()
  const results = await Promise.all(agents.map((agent, i) => agent.post(`${new URL(pages[i]!.url).pathname}/code`, { code })))
  t.same(results.map((r) => r.status).sort(), [303, 422], 'one goes on, the other is told the code did not work')
  const events = (await otpEvents()).slice(-2).map((e) => e.type).sort()
  t.same(events, ['OtpRejected', 'OtpVerified'])
})

t.test('the one-statement write path left the same tokens and streams rows a rebuild from the log gives', async (t) => {
  const { assertRebuildEqual } = await import('../helpers/rebuild.js')
  await assertRebuildEqual(t, database.db, database.store, ['tokens', 'streams', 'users', 'clients'])
})

t.test('RP-initiated logout ends the provider session and the gateway session, then returns to the application', async (t) => {
  const agent = new Agent(BASE)
  const a = await authorize(payroll, {})
  const login = await agent.follow(await agent.get(a.url.toString()))
  const cb = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }), CALLBACK)
  const tokens = await exchange(payroll, cb.location!, a)
  const end = oidc.buildEndSessionUrl(payroll, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: CALLBACK, state: 'bye' })
  const confirm = await agent.get(end.toString())
  t.match(confirm.body, /Do you want to sign out of Tessera/)
  const action = new URL(/<form[^>]*action="([^"]+)"/.exec(confirm.body)![1]!, BASE).toString()
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!
  const done = await agent.post(action, { xsrf, logout: 'yes' }, { csrf: false })
  t.match(done.location, /^https:\/\/rp\.example\.com\/callback\?state=bye/)
  const again = await authorize(payroll, {})
  const page = await agent.follow(await agent.get(again.url.toString()))
  t.match(page.body, /<h1>Sign in<\/h1>/, 'signing in again asks for the password')
})
