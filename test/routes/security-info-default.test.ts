// Security info as Entra's My Sign-Ins shows it: the default sign-in method, changed with a code like any
// change; tokens an admin assigned, listed as not yet activated with an Activate action.
import t from 'tap'
import { sql } from 'kysely'
import { activateToken, assignToken } from '../../src/commands/tokens.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'

const { app, database, clock } = await testApp(t)
let now = Math.floor(Date.UTC(2026, 10, 25, 9, 0, 15) / 1000)
clock.now = new Date(now * 1000)
const code = (serial: string) => totpAt(seedOf(serial).hex, now)
const alice = await addUser(app, 'alice@example.com')
const bob = await addUser(app, 'bob@example.com')
const [FIRST, SECOND, WAITING, BOBS] = ['6100001', '6100002', '6100003', '6100004']
await importEntra(app, [FIRST, SECOND, WAITING, BOBS].map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
await activateToken(app.commands, { serial: FIRST, userId: alice.userId, name: 'First fob', code: code(FIRST) }, metadata())
now += 30
clock.now = new Date(now * 1000)
await activateToken(app.commands, { serial: SECOND, userId: alice.userId, name: 'Second fob', code: code(SECOND) }, metadata())
await assignToken(app.commands, { serial: WAITING, userId: alice.userId }, metadata({ actor: { type: 'admin', id: 'helpdesk' } }))
await activateToken(app.commands, { serial: BOBS, userId: bob.userId, name: 'Bob fob', code: code(BOBS) }, metadata())
now += 30
clock.now = new Date(now * 1000)

t.test('Security info shows the default method (the newest until one is chosen) and tokens waiting to be activated', async (t) => {
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  const info = text((await b.get('/security-info')).body)
  t.match(info, /Default sign-in method: Hardware token - Second fob Change/)
  t.match(info, /Not yet activated Your administrator gave you these\. Activate one with a code from it to sign in with it\. Hardware token Token2 C202 \(serial 6100003\) Activate/)
  const activate = await b.get(`/security-info/hardware-token/serial?serial=${WAITING}`)
  t.equal(activate.location, '/security-info/verify', 'activating a second method needs a code too')
})

t.test('changing the default needs a code, and is an event', async (t) => {
  const b = new Browser(app)
  await b.signIn('alice@example.com')
  await b.get('/security-info')
  const before = Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
  t.equal((await b.post('/security-info/default', { serial: FIRST })).location, '/security-info/verify', 'a password alone changes nothing')
  t.equal(Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n), before, 'nothing written')
  t.equal((await b.get('/security-info/default')).location, '/security-info/verify')
  const verify = await b.get('/security-info/verify')
  t.match(text(verify.body), /Before you change your default sign-in method/)
  const back = await b.post('/security-info/verify', { serial: FIRST, code: code(FIRST) })
  t.equal(back.location, '/security-info/default', 'back to the change')
  const form = await b.get('/security-info/default')
  t.match(form.body, new RegExp(`value="${SECOND}" checked`), 'the current default is checked')
  const foreign = await b.post('/security-info/default', { serial: BOBS })
  t.equal(foreign.status, 422)
  t.match(text(foreign.body), /Choose one of your sign-in methods\./)
  const chosen = await b.post('/security-info/default', { serial: FIRST })
  t.equal(chosen.location, '/security-info?notice=default')
  const info = text((await b.follow(chosen)).body)
  t.match(info, /Your default sign-in method was changed\./)
  t.match(info, /Default sign-in method: Hardware token - First fob/)
  const events = (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`user-${alice.userId}`} and type = 'DefaultMethodChosen'`.execute(database.db)).rows
  t.same(events.map((e) => e.data.serial), [FIRST])
  const activate = await b.get(`/security-info/hardware-token/serial?serial=${WAITING}`)
  t.match(activate.body, new RegExp(`name="serial" value="${WAITING}"`), 'Activate opens the serial step filled in')
})
