// `tessera tokens request-software UPN [--show]`: an activation code for a software token, e-mailed to the
// user when they have an address (queued in the delivery pipeline), or printed once. The printed code is
// the one the gateway redeems: a gateway on the same database and keys takes it at /activate.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { sql } from 'kysely'
import { setUserContact } from '../../src/commands/contacts.js'
import { addUser, testApp } from '../helpers/app.js'
import { tessera } from '../helpers/cli.js'
import { metadata } from '../helpers/database.js'

const MASTER = randomBytes(32).toString('base64')
const { app, database } = await testApp(t, { TESSERA_MASTER_KEY: MASTER })
const env = { DATABASE_URL: database.url, TESSERA_MASTER_KEY: MASTER }
const rita = await addUser(app, 'rita@example.com')
await addUser(app, 'sam@example.com')
await setUserContact(app.commands, { upn: 'sam@example.com', email: 'sam@mail.example.com' }, metadata())
const count = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(database.db)).rows[0]!.n)

t.test('--show prints the code once; the gateway redeems it', async (t) => {
  const run = await tessera(['tokens', 'request-software', 'rita@example.com', '--show'], env)
  t.equal(run.code, 0, run.stderr)
  const [said, code] = run.stdout.trim().split('\n')
  t.match(said, /^activation code for rita@example\.com \(shown once; it works once, until \S+Z, at http:\/\/127\.0\.0\.1:3000\/activate\):$/)
  t.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}$/)
  const requested = (await sql<{ type: string; data: any; metadata: any }>`select type, data, metadata from events where stream_id = ${`user-${rita.userId}`}
    and type like 'ActivationCode%' order by position`.execute(database.db)).rows
  t.match(requested, [{ type: 'ActivationCodeRequested', data: { by: 'admin' }, metadata: { actor: { type: 'admin' } } }, { type: 'ActivationCodeIssued', data: { delivery: 'shown', to: null } }])
  const res = await app.inject({ method: 'POST', url: '/activate', headers: { 'content-type': 'application/json' },
    payload: { activationCode: code, username: 'rita@example.com', password: 'correct horse battery' } })
  t.equal(res.statusCode, 201, 'the printed code works at /activate')
  t.match(res.json().otpauthUri, /^otpauth:\/\/totp\//)
})

t.test('a user with an address: the code goes by e-mail, not to the terminal', async (t) => {
  const run = await tessera(['tokens', 'request-software', 'sam@example.com'], env)
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout.trim(), /^activation code ACT-[0-9A-F]{12} for sam@example\.com sent by email to s•••@mail\.example\.com; it works once, until \S+Z$/)
  t.notMatch(run.stdout, /[0-9A-Z]{4}(-[0-9A-Z]{4}){5}/)
  const queued = (await sql<{ channel: string; status: string }>`select channel, status from deliveries order by id desc limit 1`.execute(database.db)).rows[0]
  t.match(queued, { channel: 'email', status: 'pending' }, 'queued in the delivery pipeline, sealed')
})

t.test('refusals: a line that says why, a non-zero exit, nothing written', async (t) => {
  const before = await count()
  const nobody = await tessera(['tokens', 'request-software', 'nobody@example.com'], env)
  t.equal(nobody.code, 1)
  t.match(nobody.stderr, /no user nobody@example\.com/)
  const missing = await tessera(['tokens', 'request-software'], env)
  t.equal(missing.code, 2)
  t.match(missing.stderr, /tessera tokens request-software needs a user/)
  t.equal(await count(), before)
})
