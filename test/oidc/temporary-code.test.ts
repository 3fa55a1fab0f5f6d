// A user who lost their token signs in with a temporary code an admin issued: once (or for some days),
// at mfa, recorded as events; the code itself is shown once and stored as a hash.
import t from 'tap'
import { sql } from 'kysely'
import * as oidc from 'openid-client'
import { createApiKey } from '../../src/commands/api-keys.js'
import { registerClient } from '../../src/commands/clients.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { addUser, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { freePort } from '../helpers/net.js'

const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const { app, database, clock, logs } = await testApp(t, { PORT: String(port), PUBLIC_URL: BASE })
await app.listen({ port, host: '127.0.0.1' })
clock.now = new Date()
const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
const bob = await addUser(app, 'bob@example.com')
const admin = await createApiKey(app.commands, { role: 'admin', name: 'helpdesk' }, metadata())
const config = await oidc.discovery(new URL(`${BASE}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })

const issued: string[] = []
async function issue(body: object) {
  const res = await app.inject({ method: 'POST', url: '/admin/api/users/bob@example.com/temporary-code', payload: body, headers: { authorization: `Bearer ${admin.key}` } })
  t.equal(res.statusCode, 200)
  issued.push(res.json().code)
  return res.json() as { code: string; expiresAt: string }
}

async function atCodeStep() {
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const page = await agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'bob@example.com', password: 'correct horse battery' }))
  return { agent, page, verifier, nonce }
}

t.test('a one-time code signs in once, at mfa; the second try is refused', async (t) => {
  const { code } = await issue({ validDays: 2 })
  t.match(code, /^\d{4}-\d{4}-\d{4}$/)
  const first = await atCodeStep()
  t.match(first.page.body, /Temporary code/, 'a user with no token is offered the temporary code field')
  const done = await first.agent.follow(await first.agent.post(`${new URL(first.page.url).pathname}/code`, { code }), 'https://rp.example.com')
  const claims = (await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: first.verifier, expectedNonce: first.nonce })).claims()!
  t.equal(claims.acr, LEVELS.mfa)
  t.same(claims.amr, ['pwd', 'otp', 'mfa'])

  const second = await atCodeStep()
  const refused = await second.agent.post(`${new URL(second.page.url).pathname}/code`, { code })
  t.equal(refused.status, 422)
  t.match(refused.body, /That code didn&#39;t work/)
})

t.test('a reusable code works until it expires', async (t) => {
  const { code } = await issue({ validDays: 1, oneTime: false })
  for (let i = 0; i < 2; i++) {
    const { agent, page } = await atCodeStep()
    const res = await agent.post(`${new URL(page.url).pathname}/code`, { code: code.replace(/-/g, '') })
    t.equal(res.status, 303, `use ${i + 1}`)
  }
  clock.now = new Date(clock.now.getTime() + 86_400_000 + 1000)
  const { agent, page } = await atCodeStep()
  t.equal((await agent.post(`${new URL(page.url).pathname}/code`, { code })).status, 422, 'expired')
})

t.test('issued and used are events; the code is in no event and no log line', async (t) => {
  const events = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`user-${bob.userId}`} order by stream_version`.execute(database.db)).rows
  t.same(events.filter((e) => e.type.startsWith('TemporaryCode')).map((e) => e.type),
    ['TemporaryCodeIssued', 'TemporaryCodeUsed', 'TemporaryCodeIssued', 'TemporaryCodeUsed', 'TemporaryCodeUsed'])
  const stored = await sql<{ h: Buffer }>`select code_hash as h from temporary_codes`.execute(database.db)
  t.equal(stored.rows[0]!.h.length, 32, 'a sha256, not the code')
  const everything = JSON.stringify(events) + logs.join('')
  t.equal(issued.length, 2)
  for (const code of issued) {
    t.notOk(everything.includes(code) || everything.includes(code.replace(/-/g, '')), 'no issued code in events or logs')
  }
  const before = events.length
  const tooLong = await app.inject({ method: 'POST', url: '/admin/api/users/bob@example.com/temporary-code', payload: { validDays: 91 }, headers: { authorization: `Bearer ${admin.key}` } })
  t.equal(tooLong.statusCode, 400, 'beyond any policy: a bad request')
  const beyondPolicy = await app.inject({ method: 'POST', url: '/admin/api/users/bob@example.com/temporary-code', payload: { validDays: 31 }, headers: { authorization: `Bearer ${admin.key}` } })
  t.equal(beyondPolicy.statusCode, 422, "beyond the user's policy (default: 30 days)")
  t.match(beyondPolicy.json().message, /1 to 30 days under the user's security policy \(Default\)/)
  const after = await sql`select 1 from events where stream_id = ${`user-${bob.userId}`}`.execute(database.db)
  t.equal(after.rows.length, before, 'a refused code writes nothing')
})

t.test('the helpdesk case: a reset password and a temporary code, in the middle of an application sign-in', async (t) => {
  const { code } = await issue({ validDays: 1 })
  const reset = await app.inject({ method: 'POST', url: '/admin/api/users/bob@example.com/reset-password', headers: { authorization: `Bearer ${admin.key}` } })
  const { temporaryPassword } = reset.json()
  const agent = new Agent(BASE)
  const verifier = oidc.randomPKCECodeVerifier()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  const interaction = new URL(login.url).pathname
  const signedIn = await agent.post(`${interaction}/login`, { upn: 'bob@example.com', password: temporaryPassword })
  t.equal(signedIn.location, `${BASE}/password/change`, 'the temporary password leads to choosing a new one')
  const form = await agent.follow(signedIn)
  t.match(form.body, /Update your password/)
  const changed = await agent.post('/password/change', { password: 'bob chose this one', confirm: 'bob chose this one' })
  t.equal(changed.location, `${BASE}${interaction}`, 'then back to the sign-in the application started')
  const codeStep = await agent.follow(changed)
  t.match(codeStep.body, /Temporary code/, 'which asks for the second factor as before: the new password is not enough')
  const done = await agent.follow(await agent.post(`${interaction}/code`, { code }), 'https://rp.example.com')
  const claims = (await oidc.authorizationCodeGrant(config, new URL(done.location!), { pkceCodeVerifier: verifier, expectedNonce: nonce })).claims()!
  t.equal(claims.acr, LEVELS.mfa)
  t.same(claims.amr, ['pwd', 'otp', 'mfa'])
  t.notOk(logs.join('').includes(temporaryPassword), 'the temporary password is in no log line')
})
