// `tessera users reset-password UPN` prints a temporary password once; `tessera users delete UPN --yes`
// deletes the account. Without --yes, or for nobody, they refuse with a reason and change nothing.
import t from 'tap'
import { sql } from 'kysely'
import { checkPassword, registerUser } from '../../src/commands/users.js'
import { findUserByUpn } from '../../src/read-models/users.js'
import { tessera } from '../helpers/cli.js'
import { metadata, testDatabase } from '../helpers/database.js'

const { url, db, store } = await testDatabase(t)
const gina = await registerUser({ db, store }, { upn: 'gina@example.com', displayName: 'Gina', password: 'correct horse battery' }, metadata())
const count = async () => Number((await sql<{ n: string }>`select count(*) as n from events`.execute(db)).rows[0]!.n)

t.test('reset-password prints a temporary password that must be changed', async (t) => {
  const run = await tessera(['users', 'reset-password', 'gina@example.com'], { DATABASE_URL: url })
  t.equal(run.code, 0, run.stderr)
  const [said, password] = run.stdout.trim().split('\n')
  t.match(said, /^temporary password for gina@example\.com \(shown once; it works until \S+Z, only to choose a new one\):$/)
  t.match(password, /^[A-Za-z2-9]{4}(-[A-Za-z2-9]{4}){3}$/)
  const user = (await findUserByUpn(db, 'gina@example.com'))!
  t.ok(await checkPassword(user, password!), 'the printed password is the one set')
  t.notOk(await checkPassword(user, 'correct horse battery'), 'the old one no longer works')
  t.equal(user.must_change, true)
  const last = (await sql<{ type: string; metadata: any }>`select type, metadata from events where stream_id = ${`user-${gina.userId}`} order by stream_version desc limit 1`.execute(db)).rows[0]!
  t.match(last, { type: 'UserPasswordReset', metadata: { actor: { type: 'admin' } } })
})

t.test('delete needs --yes and a user who exists; then the account is gone', async (t) => {
  const before = await count()
  const unsure = await tessera(['users', 'delete', 'gina@example.com'], { DATABASE_URL: url })
  t.equal(unsure.code, 2)
  t.match(unsure.stderr, /deleting gina@example\.com signs them out everywhere, for good, and holds their tokens; add --yes to do it/)
  const nobody = await tessera(['users', 'delete', 'nobody@example.com', '--yes'], { DATABASE_URL: url })
  t.equal(nobody.code, 1)
  t.match(nobody.stderr, /no user nobody@example\.com/)
  t.equal(await count(), before, 'refusals write nothing')
  const run = await tessera(['users', 'delete', 'gina@example.com', '--yes'], { DATABASE_URL: url })
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stdout.trim(), 'deleted gina@example.com')
  t.equal(await findUserByUpn(db, 'gina@example.com'), undefined)
  t.equal((await tessera(['users', 'reset-password', 'gina@example.com'], { DATABASE_URL: url })).code, 1, 'a deleted user has no password to reset')
})

t.test('users add takes where the user is reached; a bad number is refused before anything is written', async (t) => {
  const refused = await tessera(['users', 'add', 'wanda@example.com', '--password-stdin', '--phone', '12'], { DATABASE_URL: url }, 'correct horse battery\n')
  t.not(refused.code, 0)
  t.match(refused.stderr, /That doesn't look like a phone number/)
  t.equal(await findUserByUpn(db, 'wanda@example.com'), undefined, 'no user was added')
  const run = await tessera(['users', 'add', 'xena@example.com', '--password-stdin', '--email', 'xena@mail.example.com', '--phone', '+44 7400 123480'], { DATABASE_URL: url }, 'correct horse battery\n')
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /reached at xena@mail\.example\.com \+447400123480/)
  const row = (await sql<{ email: string; mobile: string }>`select email, mobile from user_contacts c join users u on u.id = c.user_id where u.upn = 'xena@example.com'`.execute(db)).rows[0]
  t.same(row, { email: 'xena@mail.example.com', mobile: '+447400123480' })
})
