// An admin deletes an account or resets its password, as Entra and Keycloak admins do: from the pages (each
// confirmed first, in words) and the admin API, each an event with the admin as actor. A deleted account
// signs in nowhere, its tokens are held, its name is free, its history stays; a temporary password signs in
// only to choose a new one, and is never written to an event or a log.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { activateToken, checkSerial } from '../../src/commands/tokens.js'
import { assignPolicy, setPolicy } from '../../src/commands/policies.js'
import { grantRole, setUserDisabled } from '../../src/commands/users.js'
import { deleteUser } from '../../src/commands/accounts.js'
import { gatewaySessionLive, startGatewaySession } from '../../src/read-models/sessions.js'
import { findUser } from '../../src/read-models/users.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { addUser, Browser, importEntra, testApp, text } from '../helpers/app.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { metadata } from '../helpers/database.js'
import { totpAt } from '../helpers/oathtool.js'
import { seedOf } from '../helpers/seeds.js'
import { assertRebuildEqual } from '../helpers/rebuild.js'

const { app, database, clock, logs } = await testApp(t)
clock.now = new Date(1_800_000_000 * 1000)
await addAdmin(app, clock, 'ada@example.com', 'AD-1', 'Ada Admin')
await grantRole(app.commands, 'ada@example.com', 'auditor', metadata())
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const api = (method: 'GET' | 'POST' | 'DELETE', url: string) => app.inject({ method, url: `/admin/api${url}`, headers: { authorization: `Bearer ${key}` } })
const eventsOf = async (streamId: string) =>
  (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${streamId} order by stream_version`.execute(database.db)).rows
const eventCount = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)
const admin = () => signedInAdmin(app, clock)
const unix = () => Math.floor(clock.now.getTime() / 1000)

/** A user with an active token (serial) and an assigned one (serial + 'B'). */
async function userWithTokens(upn: string, serial: string) {
  const user = await addUser(app, upn)
  await importEntra(app, [`${upn},${serial},${seedOf(serial).b32},30,Token2,C202`, `${upn},${serial}B,${seedOf(`${serial}B`).b32},30,Token2,C202`])
  await activateToken(app.commands, { serial, userId: user.userId, name: 'Key', code: totpAt(seedOf(serial).hex, unix()) }, metadata())
  return user
}

t.test('deleting an account: confirmed in words, then gone everywhere, its tokens held, its name free, its history kept', async (t) => {
  const carol = await userWithTokens('carol@example.com', 'CA-1')
  await setPolicy(app.commands, 'carols', { name: 'For Carol', priority: 10, settings: DEFAULT_SETTINGS }, metadata())
  await assignPolicy(app.commands, 'carols', { kind: 'user', id: carol.userId }, metadata())
  const session = new Browser(app)
  await session.signIn('carol@example.com')
  t.equal((await session.get('/security-info')).status, 200)

  const b = await admin()
  t.match(text((await b.get('/admin/users/carol@example.com')).body), /Reset the password.*Delete the account/)
  const before = await eventCount()
  const ask = await b.post('/admin/users/carol@example.com/account/delete', {})
  t.equal(ask.status, 200)
  t.match(text(ask.body), /Delete the account of carol@example\.com\? carol@example\.com will be signed out everywhere and can never sign in again; the name becomes free for a new account\. Their 2 tokens will be taken from them and held: nobody can add them until you release each one\. Their history stays in the audit log\. This cannot be undone\./)
  t.equal(await eventCount(), before, 'nothing written before the confirmation')

  const done = await b.post('/admin/users/carol@example.com/account/delete', { confirmed: 'yes' })
  t.equal(done.location, '/admin/users?deleted=carol%40example.com')
  t.match(text((await b.follow(done)).body), /The account of carol@example\.com was deleted\. Its tokens are held until you release them/)

  const userEvents = await eventsOf(`user-${carol.userId}`)
  t.match(userEvents.slice(-2), [
    { type: 'SignInMethodRemoved', data: { serial: 'CA-1', by: 'admin' } },
    { type: 'UserDeleted', data: { upn: 'carol@example.com' }, metadata: { actor: { type: 'admin', id: 'ada@example.com' } } },
  ])
  for (const serial of ['CA-1', 'CA-1B']) {
    t.match((await eventsOf(`token-${serial}`)).at(-1), { type: 'TokenUnassigned', data: { userId: carol.userId, by: 'admin', held: true } })
  }
  t.match((await eventsOf('policy-carols')).at(-1), { type: 'PolicyUnassigned' }, 'her own policy assignment is taken back')
  const tokens = (await sql<{ serial: string; status: string; user_id: string | null; held_for: string | null }>`
    select serial, status, user_id, held_for from tokens where serial like 'CA-%' order by serial`.execute(database.db)).rows
  t.same(tokens, [
    { serial: 'CA-1', status: 'inventory', user_id: null, held_for: carol.userId },
    { serial: 'CA-1B', status: 'inventory', user_id: null, held_for: carol.userId },
  ])
  t.equal((await sql`select 1 from user_credentials where user_id = ${carol.userId}`.execute(database.db)).rows.length, 0, 'her password hash is gone')

  t.equal((await session.get('/security-info')).location, '/login', 'her open session has ended')
  const refused = await new Browser(app).signIn('carol@example.com')
  t.equal(refused.status, 401)
  t.match(text(refused.body), /Your account or password is incorrect\./, 'the same answer as for a name nobody has')
  t.equal((await b.get('/admin/users/carol@example.com')).status, 404)
  t.notMatch(text((await b.get('/admin/users?q=carol')).body), /carol@example\.com/, 'not in the list')

  // The name is free again; the new Carol is someone else and cannot add the old Carol's fobs.
  const newCarol = await addUser(app, 'carol@example.com')
  t.not(newCarol.userId, carol.userId)
  await t.rejects(checkSerial(app.commands, 'CA-1', newCarol.userId), { name: 'SerialUnavailable' })
  const released = await api('POST', '/tokens/CA-1/release')
  t.equal(released.statusCode, 200, released.body)
  await t.resolves(checkSerial(app.commands, 'CA-1', newCarol.userId), 'released, it is claimable again')

  // The audit still tells the old account's story, by its id.
  const timeline = text((await b.get(`/audit?stream=user-${carol.userId}`)).body)
  t.match(timeline, /admin ada@example\.com deleted the account of carol@example\.com/)
  await assertRebuildEqual(t, database.db, database.store, ['users', 'tokens', 'policies'])
})

t.test('what a delete refuses: your own account, the last admin, someone who does not exist; nothing is written', async (t) => {
  const b = await admin()
  await b.get('/admin/users/ada@example.com')
  const before = await eventCount()
  const self = await b.post('/admin/users/ada@example.com/account/delete', { confirmed: 'yes' })
  t.equal(self.status, 409)
  t.match(text(self.body), /You can't disable, delete or reset your own account/)
  const last = await api('DELETE', '/users/ada@example.com')
  t.equal(last.statusCode, 409)
  t.match(last.json(), { message: 'ada@example.com is the only admin left. Grant the admin role to someone else first.' })
  const none = await api('DELETE', '/users/nobody@example.com')
  t.equal(none.statusCode, 404)
  t.match(none.json(), { message: 'no user nobody@example.com' })
  t.equal(await eventCount(), before)

  await addUser(app, 'dave@example.com')
  const gone = await api('DELETE', '/users/dave@example.com')
  t.equal(gone.statusCode, 200)
  t.same(gone.json(), { deleted: 'dave@example.com', heldTokens: [], retiredTokens: [] })
  t.equal((await api('DELETE', '/users/dave@example.com')).statusCode, 404, 'deleted once')
})

t.test('a password reset: a temporary password shown once, sessions ended, good only to choose a new password', async (t) => {
  const erin = await userWithTokens('erin@example.com', 'ER-1')
  const session = new Browser(app)
  await session.signIn('erin@example.com')
  const b = await admin()
  await b.get('/admin/users/erin@example.com')
  const before = await eventCount()
  const ask = await b.post('/admin/users/erin@example.com/account/reset-password', {})
  t.match(text(ask.body), /Reset the password of erin@example\.com\? erin@example\.com's password stops working now and they are signed out everywhere\. You will see a temporary password once, to give them: it works for 72 hours, only to choose a new password\./)
  t.equal(await eventCount(), before, 'nothing written before the confirmation')
  const shown = await b.post('/admin/users/erin@example.com/account/reset-password', { confirmed: 'yes' })
  t.equal(shown.status, 200)
  t.equal(shown.headers['cache-control'], 'no-store')
  const temporary = /id="temporary-password">([^<]+)</.exec(shown.body)![1]!
  t.match(temporary, /^[A-Za-z2-9]{4}-[A-Za-z2-9]{4}-[A-Za-z2-9]{4}-[A-Za-z2-9]{4}$/)
  t.match(text(shown.body), /Temporary password Give this password to erin@example\.com\. It is shown only now\./)
  t.match((await eventsOf(`user-${erin.userId}`)).at(-1), { type: 'UserPasswordReset', metadata: { actor: { type: 'admin', id: 'ada@example.com' } } })
  t.equal((await sql`select 1 from events where data::text like ${`%${temporary}%`} or metadata::text like ${`%${temporary}%`}`.execute(database.db)).rows.length, 0, 'in no event')
  t.notOk(logs.some((l) => l.includes(temporary)), 'in no log line')
  t.equal((await session.get('/security-info')).location, '/login', 'her open session has ended')
  t.equal((await new Browser(app).signIn('erin@example.com')).status, 401, 'her old password no longer works')
  const afterReset = await eventCount()

  const erinAgain = new Browser(app)
  const signIn = await erinAgain.signIn('erin@example.com', temporary)
  t.equal(signIn.location, '/password/change')
  t.equal((await erinAgain.get('/security-info')).location, '/login', 'the temporary password opened no session')
  const form = await erinAgain.get('/password/change')
  t.equal(form.status, 200)
  t.equal(form.headers['cache-control'], 'no-store')
  t.match(text(form.body), /Update your password Your administrator reset your password\. Choose a new one to continue\./)
  const short = await erinAgain.post('/password/change', { password: 'short', confirm: 'short' })
  t.equal(short.status, 422)
  t.match(text(short.body), /Use at least 8 characters\./)
  const mismatch = await erinAgain.post('/password/change', { password: 'a new long password', confirm: 'another long password' })
  t.match(text(mismatch.body), /The passwords don't match\./)
  const same = await erinAgain.post('/password/change', { password: temporary, confirm: temporary })
  t.match(text(same.body), /Choose a password different from your temporary one\./)
  const list = await app.inject({ method: 'POST', url: '/password/change', payload: 'password=a&password=b&confirm=x',
    headers: { cookie: erinAgain.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(list.statusCode, 400, 'a list is bad input')
  t.equal(await eventCount(), afterReset, 'no refusal wrote anything')

  const changed = await erinAgain.post('/password/change', { password: 'erin chose this one', confirm: 'erin chose this one' })
  t.equal(changed.location, '/security-info')
  const info = await erinAgain.follow(changed)
  t.equal(info.status, 200, 'signed in')
  t.match(text(info.body), /Your password was changed\./)
  t.match((await eventsOf(`user-${erin.userId}`)).slice(-2), [{ type: 'UserPasswordSet' }, { type: 'UserSignedIn', data: { method: 'pwd' } }])
  t.equal((await new Browser(app).signIn('erin@example.com', temporary)).status, 401, 'the temporary password is spent')
  t.equal((await new Browser(app).signIn('erin@example.com', 'erin chose this one')).location, '/security-info')
  t.equal((await erinAgain.get('/password/change')).status, 401, 'nothing left to change')
  await assertRebuildEqual(t, database.db, database.store, ['users'])
})

t.test('from the API; a temporary password expires, and so does the page that replaces it', async (t) => {
  await addUser(app, 'frank@example.com')
  const reset = await api('POST', '/users/frank@example.com/reset-password')
  t.equal(reset.statusCode, 200)
  t.equal(reset.headers['cache-control'], 'no-store')
  const { temporaryPassword, expiresAt, user } = reset.json()
  t.equal(user, 'frank@example.com')
  t.equal(new Date(expiresAt).getTime(), clock.now.getTime() + 72 * 3600_000)
  t.equal((await api('POST', '/users/nobody@example.com/reset-password')).statusCode, 404)

  // Signed in with it, but the new password comes more than 10 minutes later: sign in again.
  const slow = new Browser(app)
  t.equal((await slow.signIn('frank@example.com', temporaryPassword)).location, '/password/change')
  await slow.get('/password/change')
  clock.now = new Date(clock.now.getTime() + 11 * 60_000)
  const late = await slow.post('/password/change', { password: 'frank chose this', confirm: 'frank chose this' })
  t.equal(late.status, 401)
  t.match(text(late.body), /Sign in again with your temporary password to choose a new one\./)

  // A second reset voids a change started with the first one.
  const first = new Browser(app)
  await first.signIn('frank@example.com', temporaryPassword)
  await first.get('/password/change')
  const second = (await api('POST', '/users/frank@example.com/reset-password')).json().temporaryPassword
  const stale = await first.post('/password/change', { password: 'frank chose this', confirm: 'frank chose this' })
  t.equal(stale.status, 409)
  t.match(text(stale.body), /Your temporary password no longer works\. Sign in again, or ask your administrator for a new one\./)

  clock.now = new Date(clock.now.getTime() + 73 * 3600_000)
  const expired = await new Browser(app).signIn('frank@example.com', second)
  t.equal(expired.status, 403)
  t.match(text(expired.body), /Your temporary password has expired\. Ask your administrator for a new one\./)
  const wrong = await new Browser(app).signIn('frank@example.com', 'not the password')
  t.equal(wrong.status, 401, 'without the right password, nothing says a reset happened')
})

t.test('a sign-in whose password was checked before a reset and whose session starts after it is dead', async (t) => {
  const hana = await addUser(app, 'hana@example.com')
  const before = (await sql<{ at: Date }>`select date_trunc('milliseconds', updated_at) as at from user_credentials where user_id = ${hana.userId}`.execute(database.db)).rows[0]!.at
  const browser = new Browser(app)
  await browser.signIn('hana@example.com')
  await api('POST', '/users/hana@example.com/reset-password')
  t.equal((await browser.get('/security-info')).location, '/login', 'a session of the old password ends')
  // The race: the old password was right a moment before the reset; the session row is written after it.
  const late = await startGatewaySession(database.db, hana.userId, clock.now, 3600_000, before)
  t.notOk(await gatewaySessionLive(database.db, late, hana.userId, clock.now), 'it is born dead: its password is no longer the account\'s')
  const after = (await sql<{ at: Date }>`select date_trunc('milliseconds', updated_at) as at from user_credentials where user_id = ${hana.userId}`.execute(database.db)).rows[0]!.at
  const fresh = await startGatewaySession(database.db, hana.userId, clock.now, 3600_000, after)
  t.ok(await gatewaySessionLive(database.db, fresh, hana.userId, clock.now), 'a session of the current password is live')
})

t.test('two admins deleting or disabling each other at once leave one admin', async (t) => {
  await addUser(app, 'ivan@example.com')
  await grantRole(app.commands, 'ivan@example.com', 'admin', metadata())
  await addUser(app, 'jane@example.com')
  await grantRole(app.commands, 'jane@example.com', 'admin', metadata())
  // Ada steps aside first so that Ivan and Jane are the last two.
  await setUserDisabled(app.commands, { upn: 'ada@example.com', disabled: true }, metadata())
  const results = await Promise.allSettled([
    deleteUser(app.commands, { upn: 'ivan@example.com' }, metadata({ actor: { type: 'admin', id: 'jane@example.com' } })),
    deleteUser(app.commands, { upn: 'jane@example.com' }, metadata({ actor: { type: 'admin', id: 'ivan@example.com' } })),
  ])
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one delete wins')
  t.match(results.find((r) => r.status === 'rejected'), { reason: { name: 'LastAdmin' } })
  const jane = await api('DELETE', '/users/jane@example.com/roles/admin')
  const ivan = await api('POST', '/users/ivan@example.com/disable')
  t.ok([jane.statusCode, ivan.statusCode].includes(409), 'nor can the last one lose the role or be disabled')
  const admins = (await sql<{ n: number }>`select count(*)::int as n from users where roles ? 'admin' and not deleted and not disabled`.execute(database.db)).rows[0]!.n
  t.equal(admins, 1)
  await setUserDisabled(app.commands, { upn: 'ada@example.com', disabled: false }, metadata())
})

t.test('a confirmation names the account by id: one deleted and added again under the name is not touched', async (t) => {
  const kim = await addUser(app, 'kim@example.com')
  const b = await admin()
  await b.get('/admin/users/kim@example.com')
  const ask = await b.post('/admin/users/kim@example.com/account/delete', {})
  t.match(ask.body, new RegExp(`name="userId" value="${kim.userId}"`))
  await api('DELETE', '/users/kim@example.com')
  const newKim = await addUser(app, 'kim@example.com')
  const refused = await b.post('/admin/users/kim@example.com/account/delete', { confirmed: 'yes', userId: kim.userId })
  t.equal(refused.status, 409)
  t.match(text(refused.body), /The account kim@example\.com changed since you asked: it was deleted and added again\./)
  t.ok(await findUser(database.db, newKim.userId), 'the new account is still there')
  t.match(text((await b.get(`/audit?stream=user-${kim.userId}`)).body), /kim@example\.com \(deleted\)/, 'the audit tells the two apart')
})
