// Users for admins, as Keycloak and Entra show them: a list searched by name, accounts disabled and
// enabled (a disabled account signs in nowhere and its sessions end), roles granted and taken; from the
// pages and the admin API, each change an event with the admin as actor.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { grantRole } from '../../src/commands/users.js'
import { addUser, Browser, testApp, text } from '../helpers/app.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { metadata } from '../helpers/database.js'

const { app, database, clock } = await testApp(t)
clock.now = new Date(1_800_000_000 * 1000)
const ada = await addAdmin(app, clock, 'ada@example.com', 'AD-1', 'Ada Admin')
const alice = await addUser(app, 'alice@example.com', 'correct horse battery', 'Alice Example')
await addUser(app, 'alicia@example.com', 'correct horse battery', 'Alicia Other')
await addUser(app, 'bob@example.com')
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const api = (method: 'GET' | 'POST' | 'DELETE', url: string) => app.inject({ method, url: `/admin/api${url}`, headers: { authorization: `Bearer ${key}` } })
const lastUserEvent = async (userId: string) =>
  (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`user-${userId}`} order by stream_version desc limit 1`.execute(database.db)).rows[0]!

const admin = () => signedInAdmin(app, clock)

t.test('the users list searches names and principal names', async (t) => {
  const b = await admin()
  const all = text((await b.get('/admin/users')).body)
  t.match(all, /ada@example\.com Ada Admin admin enabled alice@example\.com Alice Example enabled alicia@example\.com/)
  const some = text(/<tbody>[\s\S]*<\/tbody>/.exec((await b.get('/admin/users?q=ALI')).body)![0])
  t.match(some, /alice@example\.com/)
  t.match(some, /alicia@example\.com/)
  t.notMatch(some, /bob@example\.com|ada@example\.com/)
  t.match(text((await b.get('/admin/users?q=nobody')).body), /No users match\./)
  const listed = (await api('GET', '/users?q=alic')).json()
  t.same(listed.users.map((u: { upn: string }) => u.upn), ['alice@example.com', 'alicia@example.com'])
})

t.test('a disabled account signs in nowhere and its sessions end; enabled, it signs in again', async (t) => {
  const session = new Browser(app)
  await session.signIn('alice@example.com')
  t.equal((await session.get('/security-info')).status, 200)

  const b = await admin()
  await b.get('/admin/users/alice@example.com')
  const ask = await b.post('/admin/users/alice@example.com/account/disable', {})
  t.match(text(ask.body), /Disable the account of alice@example\.com\? alice@example\.com will be signed out everywhere and cannot sign in/)
  t.equal((await lastUserEvent(alice.userId)).type, 'UserSignedIn', 'nothing written before the confirmation')
  // Something the provider holds for her (a session, a grant, a token): disabling removes it for good.
  await sql`insert into oidc_payloads (type, id, payload) values ('RefreshToken', 'rt-alice', ${JSON.stringify({ accountId: alice.userId })}::jsonb)`.execute(database.db)
  const done = await b.post('/admin/users/alice@example.com/account/disable', { confirmed: 'yes' })
  t.match(text((await b.follow(done)).body), /The account was disabled; its sessions ended\. .*Account disabled: no sign-in is accepted/)
  t.match(await lastUserEvent(alice.userId), { type: 'UserDisabled', metadata: { actor: { type: 'admin', id: 'ada@example.com' } } })

  t.equal((await session.get('/security-info')).location, '/login', 'her open session has ended')
  t.equal((await sql`select 1 from oidc_payloads where id = 'rt-alice'`.execute(database.db)).rows.length, 0, "the provider's tokens for her are gone, not just hidden")
  const refused = await new Browser(app).signIn('alice@example.com')
  t.equal(refused.status, 403)
  t.match(text(refused.body), /Your account is disabled\. Contact your administrator\./)
  const wrong = await new Browser(app).signIn('alice@example.com', 'not her password')
  t.equal(wrong.status, 401, 'without the password, nothing says the account exists or is disabled')
  t.match(text(wrong.body), /Your account or password is incorrect\./)

  const enabled = await api('POST', '/users/alice@example.com/enable')
  t.match(enabled.json(), { user: { upn: 'alice@example.com', disabled: false }, changed: true })
  t.equal((await new Browser(app).signIn('alice@example.com')).status, 303, 'enabled, she signs in')
  t.match((await api('POST', '/users/alice@example.com/enable')).json(), { changed: false }, 'enabling twice changes nothing')
})

t.test('roles are granted and taken, from the pages and the API', async (t) => {
  const b = await admin()
  await b.get('/admin/users/bob@example.com')
  const granted = await b.post('/admin/users/bob@example.com/account/grant', { role: 'auditor' })
  t.match(text((await b.follow(granted)).body), /The role was granted\..*Roles auditor/)
  const taken = await api('DELETE', '/users/bob@example.com/roles/auditor')
  t.match(taken.json(), { user: { roles: [] }, changed: true })
  t.equal((await lastUserEvent((await database.db.selectFrom('users').select('id').where('upn', '=', 'bob@example.com').executeTakeFirstOrThrow()).id)).type, 'UserRoleRevoked')
  t.equal((await api('POST', '/users/bob@example.com/roles/root')).statusCode, 400)
  t.equal((await api('POST', '/users/nobody@example.com/roles/admin')).statusCode, 404)
  t.equal((await api('POST', '/users/nobody@example.com/disable')).statusCode, 404)
})

t.test("an admin cannot disable their own account or take their own admin role; odd addresses are bad input", async (t) => {
  await grantRole(app.commands, 'ada@example.com', 'auditor', metadata())
  const b = await admin()
  await b.get('/admin/users/ada@example.com')
  const self = await b.post('/admin/users/ada@example.com/account/disable', { confirmed: 'yes' })
  t.equal(self.status, 409)
  t.match(text(self.body), /You can't disable, delete or reset your own account, or take your own admin role\. Ask another admin\./)
  await b.get('/admin/users/ada@example.com')
  t.equal((await b.post('/admin/users/ada@example.com/account/revoke', { role: 'admin' })).status, 409)
  t.equal((await lastUserEvent(ada.userId)).type, 'UserSignedIn', 'nothing written')
  t.ok((await database.db.selectFrom('users').select('roles').where('id', '=', ada.userId).executeTakeFirstOrThrow()).roles.includes('admin'), 'still an admin')
  t.equal((await b.get('/admin/users?q=a&q=b')).status, 400, 'a parameter given twice')
  t.equal((await b.get('/admin/users?q=%00')).status, 400, 'a NUL character')
  t.equal((await b.get('/audit?before=99999999999999999999')).status, 400, 'a position past any there is')
})
