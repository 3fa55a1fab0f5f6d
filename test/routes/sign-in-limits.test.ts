// Password guessing is limited per account, fairly (Keycloak's brute-force detection and its defaults,
// with OWASP's device cookies), and per address by what fails, so an office behind one address is not
// locked out by its own sign-ins. Over HTTP with real pages, sessions and CSRF.
import t from 'tap'
import { sql } from 'kysely'
import { accountWaitMs, BRUTE_FORCE } from '../../src/commands/users.js'
import { ADDRESS_FAILURES } from '../../src/routes/sign-in.js'
import { addUser, Browser, testApp, text } from '../helpers/app.js'

const { app, database, clock } = await testApp(t)
let now = Date.UTC(2026, 10, 24, 9, 0, 0)
clock.now = new Date(now)
const alice = await addUser(app, 'alice@example.com')
await addUser(app, 'bob@example.com')
await addUser(app, 'carol@example.com')

async function failures(userId: string) {
  return (await sql<{ data: any }>`select data from events where stream_id = ${`user-${userId}`} and type = 'UserSignInFailed' order by stream_version`.execute(database.db)).rows.map((r) => r.data)
}

function browser(ip: string) {
  const b = new Browser(app)
  b.ip = ip
  return b
}

t.test('the delay grows with every 30 wrong passwords, up to 15 minutes, and is forgotten after 12 hours', async (t) => {
  const at = new Date(Date.UTC(2026, 0, 1))
  const wait = (failures: number, after = 0) => accountWaitMs({ sign_in_failures: failures, last_sign_in_failure_at: at }, new Date(at.getTime() + after))
  t.equal(wait(29), 0, 'below the failure factor, no delay')
  t.equal(wait(30), 60_000)
  t.equal(wait(59), 60_000)
  t.equal(wait(60), 120_000)
  t.equal(wait(30 * 100), BRUTE_FORCE.maxWaitSeconds * 1000, 'at most 15 minutes')
  t.equal(wait(30, 20_000), 40_000, 'counted from the last failure')
  t.equal(wait(3000, 12 * 3600 * 1000 + 1), 0, 'a run of failures is forgotten 12 hours after the last')
})

t.test("30 wrong passwords delay the account for new browsers, but not for the user's own", async (t) => {
  // Alice signs in once from her own browser: it gets a device cookie.
  const own = browser('192.0.2.10')
  t.equal((await own.signIn('alice@example.com')).status, 303)
  t.match(own.cookieHeader(), /tessera_device=/, 'her browser is remembered')
  await own.post('/logout', {})

  // An attacker guesses from many addresses.
  for (let i = 0; i < BRUTE_FORCE.failureFactor; i++) {
    const res = await browser(`198.51.100.${i + 1}`).signIn('alice@example.com', `guess ${i}`)
    if (res.status !== 401) t.fail(`guess ${i} answered ${res.status}`)
  }
  const recorded = await failures(alice.userId)
  t.equal(recorded.length, BRUTE_FORCE.failureFactor, 'every failed sign-in is an event')
  t.same(recorded.map((d) => d.failures), Array.from({ length: 30 }, (_, i) => i + 1), 'counting the run')

  const stranger = browser('203.0.113.50')
  const delayed = await stranger.signIn('alice@example.com')
  t.equal(delayed.status, 429, 'even the right password waits in a new browser')
  t.match(text(delayed.body), /Too many wrong passwords for this account\. Wait a minute and try again, or sign in from a browser you used before\./)
  t.equal((await stranger.get('/security-info')).location, '/login', 'no session')
  t.equal((await failures(alice.userId)).length, 30, 'the password was not even checked')

  const mine = await own.signIn('alice@example.com')
  t.equal(mine.status, 303, 'her own browser signs her in at once')
  const after = await browser('203.0.113.51').signIn('alice@example.com')
  t.equal(after.status, 303, 'a sign-in ends the run of failures')
})

t.test('a name nobody has is delayed the same way, so the delay tells nothing', async (t) => {
  let last = ''
  for (let i = 0; i <= BRUTE_FORCE.failureFactor; i++) {
    const res = await browser(`198.51.101.${i + 1}`).signIn('nobody@example.com', `guess ${i}`)
    last = `${res.status} ${text(res.body).match(/Too many[^.]+\./)?.[0] ?? ''}`
  }
  t.equal(last, '429 Too many wrong passwords for this account.')
})

t.test('an address is limited by its wrong passwords, never by its good sign-ins', async (t) => {
  const office = '192.0.2.200'
  for (let i = 0; i < 40; i++) {
    const res = await browser(office).signIn(i % 2 ? 'bob@example.com' : 'carol@example.com')
    if (res.status !== 303) {
      t.fail(`sign-in ${i} from the office answered ${res.status}`)
      break
    }
  }
  t.pass('40 good sign-ins in a minute from one address all went through')

  const attacker = '198.51.102.7'
  for (let i = 0; i < ADDRESS_FAILURES.max; i++) await browser(attacker).signIn(`user${i}@example.com`, 'guess')
  const blocked = await browser(attacker).signIn('carol@example.com')
  t.equal(blocked.status, 429)
  t.match(text(blocked.body), /Too many wrong passwords from your network\. Wait \d+ minutes and try again\./)
  t.equal((await browser(office).signIn('carol@example.com')).status, 303, 'other addresses are not affected')
})

t.test('the OpenID sign-in is no longer blocked by a stranger with 10 wrong passwords a minute', async (t) => {
  // The per-name request limit is gone: the account's own budget and the address's failures remain.
  for (let i = 0; i < 12; i++) await browser(`198.51.103.${i + 1}`).signIn('bob@example.com', `guess ${i}`)
  t.equal((await browser('192.0.2.77').signIn('bob@example.com')).status, 303)
})

t.test('a burst of guesses sent at once passes the password check at most 30 times', async (t) => {
  const dave = await addUser(app, 'dave@example.com')
  const forms = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const b = browser(`198.51.104.${i + 1}`)
    await b.get('/login')
    return b
  }))
  const answers = await Promise.all(forms.map((b, i) => b.post('/login', { upn: 'dave@example.com', password: `burst ${i}` })))
  const statuses = answers.map((a) => a.status)
  t.ok(statuses.filter((s) => s === 401).length <= BRUTE_FORCE.failureFactor, `at most 30 checked (${statuses.filter((s) => s === 401).length})`)
  t.same(statuses.filter((s) => s !== 401 && s !== 429), [], 'the rest wait (429), none fails')
  t.equal((await failures(dave.userId)).length, statuses.filter((s) => s === 401).length, 'every checked guess is an event, none lost to a conflict')
})
