// An admin sets where a user is reached and programs a phone or e-mail method from it (Defender's Token
// Programming Wizard), from the API and the pages. Every method added or removed is told to the user by
// e-mail through the delivery pipeline: the message a real mail server received says what, when, from where.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { setPolicy } from '../../src/commands/policies.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { addUser, Browser, testApp, text } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { codeIn, received, smscPeer, smtpPeer } from '../helpers/peers.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'

const smsc = await smscPeer(t)
const mail = await smtpPeer(t)
const { app, database, clock } = await testApp(t, { TESSERA_DELIVERY_PROVIDERS: JSON.stringify([
  { name: 'smsc', type: 'smpp', url: smsc.url }, { name: 'mail', type: 'smtp', url: mail.url, from: 'no-reply@example.com' },
]) })
let offset = 0
Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'] } }, metadata())
await addAdmin(app, clock)
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const api = (method: 'PUT' | 'POST' | 'GET', url: string, payload?: object) =>
  app.inject({ method, url: `/admin/api${url}`, payload, headers: { authorization: `Bearer ${key}` } })
const eventsOf = async (stream: string) =>
  (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${stream} order by stream_version`.execute(database.db)).rows

t.test('the API sets a user\'s address and number, and programs a phone method from it; the user is told by e-mail', async (t) => {
  const tara = await addUser(app, 'tara@example.com')
  const bad = await api('PUT', '/users/tara@example.com/contact', { mobile: '12345' })
  t.equal(bad.statusCode, 422)
  t.match(bad.json().message, /That doesn't look like a phone number/)
  t.equal((await api('PUT', '/users/tara@example.com/contact', { mobile: ['+447400123470'] })).statusCode, 400, 'a list is bad input')
  for (const email of ['a\u0000b@example.com', 'a\u0001b@example.com']) {
    const control = await api('PUT', '/users/tara@example.com/contact', { email })
    t.equal(control.statusCode, 422, 'a control character is bad input')
    t.match(control.json().message, /Enter an email address like alice@example\.com\./)
  }
  const none = await api('POST', '/users/tara@example.com/methods', { kind: 'sms' })
  t.equal(none.statusCode, 409)
  t.match(none.json().message, /The user has no mobile number\. Set one first\./)

  const set = await api('PUT', '/users/tara@example.com/contact', { email: 'tara@mail.example.com', mobile: '+44 7400 123470' })
  t.equal(set.statusCode, 200)
  t.match(set.json(), { email: 'tara@mail.example.com', mobile: '+447400123470' })
  t.match((await eventsOf(`user-${tara.userId}`)).at(-1), { type: 'UserContactChanged', data: { email: 't•••@mail.example.com', mobile: '+44 ••• ••• 470' } }, 'masked in the event')

  const before = mail.messages.length
  const programmed = await api('POST', '/users/tara@example.com/methods', { kind: 'sms' })
  t.equal(programmed.statusCode, 201)
  t.match(programmed.json(), { kind: 'sms', destination: '+44 ••• ••• 470', status: 'active' })
  const serial = programmed.json().serial
  t.match((await eventsOf(`token-${serial}`)).map((e) => e.type), ['TokenRegistered', 'TokenActivated'])
  t.match((await eventsOf(`user-${tara.userId}`)).at(-1), { type: 'SignInMethodAdded', data: { serial, by: 'admin' } })
  await received(mail.messages, before + 1)
  t.match(mail.messages.at(-1), { to: 'tara@mail.example.com',
    text: /Phone \(\+44 ••• ••• 470\) was added to your sign-in methods on .* UTC by an administrator from address 127\.0\.0\.1\.[\s\S]*If this wasn't you, contact your administrator at once/ })

  // She signs in with it at once: the code goes to the number the admin set.
  const b = new Browser(app)
  await b.signIn('tara@example.com')
  await b.get('/security-info/verify')
  const sent = await b.post('/security-info/verify/send', { serial })
  t.equal(sent.status, 200, text(sent.body))
  await received(smsc.messages)
  t.equal(smsc.messages.at(-1)!.to, '+447400123470')
  t.equal((await b.post('/security-info/verify', { code: codeIn(smsc.messages.at(-1)) })).location, '/security-info/add')

  // She removes it; she hears of that too.
  await b.get(`/security-info/methods/${serial}/remove`)
  const removed = await b.post(`/security-info/methods/${serial}/remove`, {})
  t.equal(removed.location, '/security-info?notice=removed')
  await received(mail.messages, before + 2)
  t.match(mail.messages.at(-1)!.text, /Phone \(\+44 ••• ••• 470\) was removed from your sign-in methods on .* UTC from address 127\.0\.0\.1\./)
})

t.test('a user without an address gets no e-mail, and nothing waits for one', async (t) => {
  const uma = await addUser(app, 'uma@example.com')
  await api('PUT', '/users/uma@example.com/contact', { mobile: '+447400123471' })
  t.equal((await api('POST', '/users/uma@example.com/methods', { kind: 'sms' })).statusCode, 201)
  const queued = (await sql<{ n: number }>`select count(*)::int as n from deliveries where user_id = ${uma.userId} and challenge is null`.execute(database.db)).rows[0]!.n
  t.equal(queued, 0)
  t.equal((await api('POST', '/users/uma@example.com/methods', { kind: 'sms' })).statusCode, 409, 'the same number twice is refused')
})

t.test('the admin pages: the user\'s address and number, and a button per method they allow', async (t) => {
  await addUser(app, 'vera@example.com')
  const b = await signedInAdmin(app, clock)
  await b.get('/admin/users/vera@example.com')
  const bad = await b.post('/admin/users/vera@example.com/contact', { email: 'not an address', mobile: '' })
  t.equal(bad.status, 422)
  t.match(text(bad.body), /Enter an email address like alice@example\.com\./)
  const saved = await b.post('/admin/users/vera@example.com/contact', { email: 'vera@mail.example.com', mobile: '+44 7400 123472' })
  const page = text((await b.follow(saved)).body)
  t.match(page, /How the user is reached was saved\./)
  t.match(page, /Add a phone method for \+447400123472/)
  t.match(page, /Add an email method for vera@mail\.example\.com/)
  const added = await b.post('/admin/users/vera@example.com/methods', { kind: 'email' })
  t.match(text((await b.follow(added)).body), /An email method was added for the user; they were told\..*Email EMAIL-[0-9A-F]+ v•••@mail\.example\.com \(active\)/)
})
