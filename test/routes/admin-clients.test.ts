// Relying applications for admins: listed, added (the secret shown once), changed, given a new secret
// (the old one stops working) and deleted (the provider no longer knows it), from the pages and the admin
// API, each an event with the admin as actor. The secrets are checked at the provider's real token endpoint.
import t from 'tap'
import { sql } from 'kysely'
import { createApiKey } from '../../src/commands/api-keys.js'
import { testApp, text } from '../helpers/app.js'
import { addAdmin, signedInAdmin } from '../helpers/staff.js'
import { metadata } from '../helpers/database.js'

const { app, database, clock } = await testApp(t)
clock.now = new Date(1_800_000_000 * 1000)
await addAdmin(app, clock)
const { key } = await createApiKey(app.commands, { role: 'admin', name: 'ops' }, metadata())
const api = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url: `/admin/api${url}`, payload, headers: { authorization: `Bearer ${key}` } })
const events = async (clientId: string) =>
  (await sql<{ type: string; metadata: any }>`select type, metadata from events where stream_id = ${`client-${clientId}`} order by stream_version`.execute(database.db)).rows

/** What the provider's token endpoint says of a client id and secret: invalid_client, or (a right secret) invalid_grant. */
async function secretWorks(clientId: string, secret: string): Promise<boolean> {
  const res = await app.inject({ method: 'POST', url: '/oidc/token', headers: { 'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
  payload: new URLSearchParams({ grant_type: 'authorization_code', code: 'nope', redirect_uri: 'https://rp.example.com/cb', code_verifier: 'x'.repeat(43) }).toString() })
  return res.json().error === 'invalid_grant'
}

t.test('the API registers, changes, renews the secret of, and deletes a relying application', async (t) => {
  const created = await api('POST', '/clients', { clientId: 'payroll', name: 'Payroll', redirectUris: ['https://rp.example.com/cb'] })
  t.equal(created.statusCode, 201)
  const { secret } = created.json()
  t.ok(await secretWorks('payroll', secret), 'its secret works at the token endpoint')
  t.match((await api('GET', '/clients')).json(), { clients: [{ clientId: 'payroll', name: 'Payroll', public: false }] })

  const bad = await api('PUT', '/clients/payroll', { name: 'Payroll', redirectUris: ['http://rp.example.com/cb'] })
  t.equal(bad.statusCode, 422)
  t.match(bad.json().message, /must use https/)
  const changed = await api('PUT', '/clients/payroll', { name: 'Payroll 2', redirectUris: ['https://rp.example.com/cb', 'https://rp.example.com/cb2'] })
  t.match(changed.json(), { client: { name: 'Payroll 2', redirectUris: ['https://rp.example.com/cb', 'https://rp.example.com/cb2'] }, changed: true })

  const rotated = (await api('POST', '/clients/payroll/rotate-secret')).json()
  t.ok(await secretWorks('payroll', rotated.secret), 'the new secret works')
  t.notOk(await secretWorks('payroll', secret), 'the old one no longer does')

  t.equal((await api('DELETE', '/clients/payroll')).statusCode, 200)
  t.notOk(await secretWorks('payroll', rotated.secret), 'deleted, it signs nobody in')
  const page = await app.inject({ method: 'GET', url: '/oidc/auth?client_id=payroll&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb' })
  t.match(page.body, /The application is not registered here\./)
  t.same((await events('payroll')).map((e) => e.type), ['ClientRegistered', 'ClientChanged', 'ClientSecretRotated', 'ClientDeleted'])
  t.equal((await api('DELETE', '/clients/payroll')).statusCode, 404, 'deleting twice: not found')
  t.equal((await api('POST', '/clients', { clientId: 'x', redirectUris: [] })).statusCode, 400, 'bad input: 400')
})

t.test('the pages add one (its secret shown once), renew its secret and delete it, each confirmed first', async (t) => {
  const b = await signedInAdmin(app, clock)
  await b.get('/admin/clients')
  const added = await b.post('/admin/clients', { clientId: 'board', name: 'Team board', redirectUris: 'https://board.example.com/cb\nhttps://board.example.com/cb2' })
  t.match(text(added.body), /The relying application was added\. Client secret Give this secret to the application's operator\. It is shown only now\./)
  const secret = /id="client-secret">([^<]+)</.exec(added.body)![1]!
  t.ok(await secretWorks('board', secret))
  t.equal(added.headers['cache-control'], 'no-store')
  t.match(text((await b.get('/admin/clients')).body), /board Team board confidential https:\/\/board\.example\.com\/cb https:\/\/board\.example\.com\/cb2/)

  await b.get('/admin/clients/board')
  const ask = await b.post('/admin/clients/board/rotate-secret', {})
  t.match(text(ask.body), /Give board a new secret\? The application's current secret stops working at once/)
  t.ok(await secretWorks('board', secret), 'nothing changed before the confirmation')
  const renewed = await b.post('/admin/clients/board/rotate-secret', { confirmed: 'yes' })
  const fresh = /id="client-secret">([^<]+)</.exec(renewed.body)![1]!
  t.ok(await secretWorks('board', fresh))
  t.notOk(await secretWorks('board', secret))

  await b.get('/admin/clients/board')
  await b.post('/admin/clients/board/delete', {})
  const deleted = await b.follow(await b.post('/admin/clients/board/delete', { confirmed: 'yes' }))
  t.match(text(deleted.body), /The relying application was deleted\./)
  t.match((await events('board')).at(-1), { type: 'ClientDeleted', metadata: { actor: { type: 'admin', id: 'ada@example.com' } } })
})
