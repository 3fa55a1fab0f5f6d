// Two gateway processes sharing PostgreSQL and Redis: a code raced through both is accepted once,
// and the rate limit counts attempts on both.
import t from 'tap'
import { randomBytes } from 'node:crypto'
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
import { startSecondGateway } from '../helpers/second-gateway.js'
import { SEED_B32, SEED_HEX } from '../fixtures/rfc-vectors.js'

const [port1, port2] = [await freePort(), await freePort()]
const PUBLIC = `http://127.0.0.1:${port1}`
const shared = {
  PUBLIC_URL: PUBLIC,
  TESSERA_MASTER_KEY: randomBytes(32).toString('base64'),
  TESSERA_SESSION_KEY: randomBytes(32).toString('base64'),
  ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
}
const { app, database, clock } = await testApp(t, { ...shared, PORT: String(port1) })
await app.listen({ port: port1, host: '127.0.0.1' })

// The second process: the real server entry point, on the same database.
await startSecondGateway(t, { ...shared, DATABASE_URL: database.url }, port2)

const NOW = Math.floor(Date.now() / 1000)
clock.now = new Date(NOW * 1000)
const CALLBACK = 'https://rp.example.com/callback'
const client = await registerClient(app.commands, { clientId: 'payroll', name: 'Payroll', redirectUris: [CALLBACK], public: false }, metadata())
const alice = await addUser(app, 'alice@example.com')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key', code: totpAt(SEED_HEX, NOW - 30) }, metadata())
const config = await oidc.discovery(new URL(`${PUBLIC}/oidc`), 'payroll', { client_secret: client.secret! }, oidc.ClientSecretBasic(client.secret!), { execute: [oidc.allowInsecureRequests] })

async function atEnterCode(agent: Agent) {
  const url = oidc.buildAuthorizationUrl(config, { redirect_uri: CALLBACK, scope: 'openid', acr_values: LEVELS.mfa, nonce: oidc.randomNonce(),
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' })
  const login = await agent.follow(await agent.get(url.toString()))
  return agent.follow(await agent.post(`${new URL(login.url).pathname}/login`, { upn: 'alice@example.com', password: 'correct horse battery' }))
}

t.test('the same code sent through both processes at once is accepted exactly once', async (t) => {
  // The second process reads the clock; the code is the current one for both.
  const now = Math.floor(Date.now() / 1000)
  clock.now = new Date(now * 1000)
  const code = totpAt(SEED_HEX, now)
  const a = new Agent(PUBLIC)
  const b = new Agent(PUBLIC)
  const pageA = await atEnterCode(a)
  const pageB = await atEnterCode(b)
  t.match(pageA.body, /Enter code/)
  const [ra, rb] = await Promise.all([
    a.post(`http://127.0.0.1:${port1}${new URL(pageA.url).pathname}/code`, { code }),
    b.post(`http://127.0.0.1:${port2}${new URL(pageB.url).pathname}/code`, { code }),
  ])
  t.same([ra.status, rb.status].sort(), [303, 422], 'one accepted, one refused')
  const types = (await sql<{ type: string }>`select type from events where stream_id = 'token-8659623756140' and type like 'Otp%'`.execute(database.db)).rows.map((r) => r.type)
  t.equal(types.filter((x) => x === 'OtpVerified').length, 1, 'one OtpVerified across both processes')
})

t.test('rate limits are shared: attempts on both processes count together', { skip: !process.env.REDIS_URL && 'REDIS_URL is not set' }, async (t) => {
  const agent = new Agent(PUBLIC)
  const page = await atEnterCode(agent)
  const path = new URL(page.url).pathname
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    const base = i % 2 ? `http://127.0.0.1:${port2}` : `http://127.0.0.1:${port1}`
    statuses.push((await agent.post(`${base}${path}/code`, { code: String(100000 + i) })).status)
  }
  t.ok(statuses.includes(429), `a 429 came before 12 attempts (${statuses.join(',')})`)
  t.ok(statuses.indexOf(429) <= 10)
})

t.test('a session signed out on one process is refused on the other', async (t) => {
  const agent = new Agent(PUBLIC)
  await agent.get(`http://127.0.0.1:${port1}/login`)
  t.equal((await agent.post(`http://127.0.0.1:${port1}/login`, { upn: 'alice@example.com', password: 'correct horse battery' })).status, 303)
  const copy = agent.copy()
  t.equal((await copy.get(`http://127.0.0.1:${port2}/security-info`)).status, 200, 'the cookie works on the second process')
  await agent.get(`http://127.0.0.1:${port2}/security-info`)
  t.equal((await agent.post(`http://127.0.0.1:${port2}/logout`, {})).status, 303, 'signed out on the second process')
  const refused = await copy.get(`http://127.0.0.1:${port1}/security-info`)
  t.equal(refused.status, 303, 'a copy of the cookie no longer works on the first')
  t.equal(new URL(refused.location!).pathname, '/login')
})

t.test('wrong passwords on both processes count toward one account delay', async (t) => {
  await addUser(app, 'dave@example.com')
  for (let i = 0; i < 30; i++) {
    const base = `http://127.0.0.1:${i % 2 ? port2 : port1}`
    const guess = new Agent(base)
    await guess.get(`${base}/login`)
    const res = await guess.post(`${base}/login`, { upn: 'dave@example.com', password: `guess ${i}` })
    if (res.status !== 401) t.fail(`guess ${i} answered ${res.status}`)
  }
  for (const port of [port1, port2]) {
    const fresh = new Agent(`http://127.0.0.1:${port}`)
    await fresh.get(`http://127.0.0.1:${port}/login`)
    const res = await fresh.post(`http://127.0.0.1:${port}/login`, { upn: 'dave@example.com', password: 'correct horse battery' })
    t.equal(res.status, 429, `a new browser waits on process ${port === port1 ? 1 : 2}`)
  }
})
