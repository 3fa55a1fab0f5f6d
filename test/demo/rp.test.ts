// The demo relying application (demo/rp.ts, @fastify/oauth2 as a real client) against the real gateway,
// both listening on loopback: sign in, step up with a code, and the claims shown are the verified ID token's.
import t from 'tap'
import { registerClient } from '../../src/commands/clients.js'
import { activateToken } from '../../src/commands/tokens.js'
import { createDemoRp, LEVELS } from '../../demo/rp.js'
import { addUser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { Agent } from '../helpers/http-agent.js'
import { totpAt } from '../helpers/oathtool.js'
import { freePort } from '../helpers/net.js'
import { SEED_B32, SEED_HEX } from '../fixtures/rfc-vectors.js'

const [gatewayPort, demoPort] = [await freePort(), await freePort()]
const GATEWAY = `http://127.0.0.1:${gatewayPort}`
// The demo on another host name than the gateway, so that each keeps its own cookies, as on two sites.
const DEMO = `http://localhost:${demoPort}`
const { app, clock } = await testApp(t, { PORT: String(gatewayPort), PUBLIC_URL: GATEWAY })
await app.listen({ port: gatewayPort, host: '127.0.0.1' })
let now = Math.floor(Date.now() / 1000)
clock.now = new Date(now * 1000)
const alice = await addUser(app, 'alice@example.com')
await importEntra(app, [`alice@example.com,8659623756140,${SEED_B32},30,Token2,C202`])
await activateToken(app.commands, { serial: '8659623756140', userId: alice.userId, name: 'Key fob', code: totpAt(SEED_HEX, now) }, metadata())
const { secret } = await registerClient(app.commands, { clientId: 'demo', name: 'Demo app', redirectUris: [`${DEMO}/callback`], public: false }, metadata())
const demo = await createDemoRp({ gateway: GATEWAY, clientId: 'demo', clientSecret: secret!, baseUrl: DEMO })
await demo.listen({ port: demoPort, host: '127.0.0.1' })
t.teardown(() => demo.close())

t.test('sign in through the demo, then step up with a code: the claims it shows are the verified ID token', async (t) => {
  const browser = new Agent(DEMO)
  const home = await browser.get(`${DEMO}/`)
  t.match(text(home.body), /Sign in Sign in with a code \(step-up\)/)
  const login = await browser.follow(await browser.get(`${DEMO}/login`))
  t.match(login.body, /<h1>Sign in<\/h1>/)
  t.match(login.body, /to continue to <strong>Demo app<\/strong>/)
  const signedIn = await browser.follow(await browser.post(`${new URL(login.url).pathname}/login`.replace(/^/, GATEWAY), { upn: 'alice@example.com', password: 'correct horse battery' }))
  t.match(text(signedIn.body), new RegExp(`Level reached: ${LEVELS.pwd} ?; methods \\(amr\\): pwd ?\\.`))
  t.match(text(signedIn.body), new RegExp(`sub "${alice.userId}"`))

  const stepUp = await browser.follow(await browser.get(`${DEMO}/login?level=mfa`))
  t.match(stepUp.body, /<h1>Enter code<\/h1>/, 'already signed in: only the code is asked for')
  now += 30
  clock.now = new Date(now * 1000)
  const done = await browser.follow(await browser.post(`${GATEWAY}${new URL(stepUp.url).pathname}/code`, { code: totpAt(SEED_HEX, now) }))
  t.match(text(done.body), new RegExp(`Level reached: ${LEVELS.mfa} ?; methods \\(amr\\): pwd, otp, hwk, mfa ?\\.`))
})

t.test('a refused sign-in comes back to the demo as an error it shows', async (t) => {
  const browser = new Agent(DEMO)
  const login = await browser.follow(await browser.get(`${DEMO}/login`))
  const back = await browser.follow(await browser.post(`${GATEWAY}${new URL(login.url).pathname}/abort`, {}))
  t.equal(back.status, 400)
  t.match(text(back.body), /Not signed in Tessera answered: access_denied/)
})
