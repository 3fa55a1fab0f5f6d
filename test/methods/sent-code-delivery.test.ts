// Codes sent by text message and e-mail, through real peers on loopback: an SMS centre over SMPP, an HTTP
// gateway speaking Kannel's sendsms, a mail server over SMTP. The code each test types is the one the peer
// received. What is proven: a code is accepted once, only the newest counts, it expires; providers fail
// over (refused, silent, down) within the code's validity; receipts are recorded; a job written before a
// crash is sent after it; two workers send each job once; the send budget holds; no code in any event or log.
import t from 'tap'
import { sql } from 'kysely'
import { setPolicy } from '../../src/commands/policies.js'
import { verifyCode } from '../../src/commands/tokens.js'
import { activateToken } from '../../src/commands/tokens.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { issueChallenge, registerSentCodeMethod } from '../../src/methods/sent-code/challenge.js'
import { DeliveryWorker } from '../../src/methods/sent-code/delivery.js'
import { makeProvider } from '../../plugins/delivery.js'
import { addUser, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { codeIn, kannelPeer, received, smscPeer, smtpPeer } from '../helpers/peers.js'
import { freePort } from '../helpers/net.js'

const smsc = await smscPeer(t, { receipts: true })
const kannel = await kannelPeer(t)
const mail = await smtpPeer(t)
const port = await freePort()
const BASE = `http://127.0.0.1:${port}`
const providers = [
  { name: 'smsc', type: 'smpp', url: smsc.url, source: 'Tessera' },
  { name: 'kannel', type: 'kannel', url: kannel.url, username: 'tessera', password: 'secret', dlrUrl: `${BASE}/delivery/kannel` },
  { name: 'mail', type: 'smtp', url: mail.url, from: 'Tessera <no-reply@example.com>' },
]
const { app, database, clock, logs } = await testApp(t, { TESSERA_DELIVERY_PROVIDERS: JSON.stringify(providers), TESSERA_DELIVERY_TIMEOUT_MS: '400',
  PORT: String(port), PUBLIC_URL: BASE })
await app.listen({ port, host: '127.0.0.1' })
// A running clock that a test may move: the worker's retries wait on it.
let offset = 0
Object.defineProperty(clock, 'now', { get: () => new Date(Date.now() + offset), set: (d: Date) => { offset = d.getTime() - Date.now() } })
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'] } }, metadata())
const limits = app.config.delivery
// The gateway's own worker; a test that stops it (a crash) starts another in its place.
let worker: DeliveryWorker = app.delivery
t.teardown(() => worker.stop())
const sent: string[] = []

async function phoneUser(upn: string, phone: string) {
  const user = await addUser(app, upn)
  const method = await registerSentCodeMethod(app.commands, { userId: user.userId, kind: 'sms', destination: phone }, metadata())
  const issued = await issueChallenge(app.commands, limits, { serial: method.serial, userId: user.userId, sourceIp: '127.0.0.1', purpose: 'activation' }, metadata())
  t.equal(await worker.outcome(issued.deliveryId, 5000), 'sent')
  const message = smsc.messages.find((m) => m.to === phone && m.at >= clock.now.getTime() - 60_000)!
  sent.push(codeIn(message))
  await activateToken(app.commands, { serial: method.serial, userId: user.userId, name: 'Phone', code: codeIn(message) }, metadata())
  return { ...user, serial: method.serial }
}
const eventsOf = async (serial: string) =>
  (await sql<{ type: string; data: any }>`select type, data from events where stream_id = ${`token-${serial}`} order by stream_version`.execute(database.db)).rows

t.test('a texted code activates the phone, signs in once, and only the newest code counts', async (t) => {
  const lena = await phoneUser('lena@example.com', '+447400123456')
  t.match(smsc.messages.at(-1), { to: '+447400123456', text: /^\d{6} is your Tessera code\. It expires in 5 minutes\. Never share it\.$/ })

  const first = await issueChallenge(app.commands, limits, { serial: lena.serial, userId: lena.userId, sourceIp: '127.0.0.1', purpose: 'sign-in' }, metadata())
  t.equal(await worker.outcome(first.deliveryId, 5000), 'sent')
  const firstCode = codeIn(smsc.messages.at(-1))
  const second = await issueChallenge(app.commands, limits, { serial: lena.serial, userId: lena.userId, sourceIp: '127.0.0.1', purpose: 'sign-in' }, metadata())
  t.equal(await worker.outcome(second.deliveryId, 5000), 'sent')
  const secondCode = codeIn(smsc.messages.at(-1))
  sent.push(firstCode, secondCode)
  t.ok(second.challenge > first.challenge)
  if (firstCode !== secondCode) {
    await t.rejects(verifyCode(app.commands, { serial: lena.serial, userId: lena.userId, code: firstCode }, metadata()), { name: 'WrongCode' }, 'a newer code voids the older one')
  }
  const used = await verifyCode(app.commands, { serial: lena.serial, userId: lena.userId, code: secondCode }, metadata())
  t.equal(used.lastStep, second.challenge)
  await t.rejects(verifyCode(app.commands, { serial: lena.serial, userId: lena.userId, code: secondCode }, metadata()), { name: 'WrongCode' }, 'accepted once')
  const types = (await eventsOf(lena.serial)).map((e) => e.type)
  t.same(types.slice(0, 3), ['TokenRegistered', 'ChallengeIssued', 'DeliveryAttempted'])
  t.ok(types.includes('TokenActivated'))
  t.ok(types.includes('CodeDelivered'), 'the SMS centre\'s receipt is recorded')
  t.ok(types.includes('OtpVerified'))
})

t.test('a code expires after the policy\'s minutes', async (t) => {
  const mia = await phoneUser('mia@example.com', '+447400123457')
  const issued = await issueChallenge(app.commands, limits, { serial: mia.serial, userId: mia.userId, sourceIp: '127.0.0.2', purpose: 'sign-in' }, metadata())
  await worker.outcome(issued.deliveryId, 5000)
  const code = codeIn(smsc.messages.at(-1))
  sent.push(code)
  clock.now = new Date(clock.now.getTime() + 5 * 60_000 + 1000)
  await t.rejects(verifyCode(app.commands, { serial: mia.serial, userId: mia.userId, code }, metadata()), { name: 'WrongCode' })
  offset = 0
})

t.test('a provider that refuses, stays silent or is down: the next one takes the message in time', async (t) => {
  const noor = await phoneUser('noor@example.com', '+447400123458')
  for (const mode of ['refuse', 'silent'] as const) {
    smsc.mode = mode
    const before = kannel.messages.length
    const started = Date.now()
    const issued = await issueChallenge(app.commands, limits, { serial: noor.serial, userId: noor.userId, sourceIp: '127.0.0.3', purpose: 'sign-in' }, metadata())
    t.equal(await worker.outcome(issued.deliveryId, 5000), 'sent', `${mode}: sent`)
    t.ok(Date.now() - started < 3000, `${mode}: within a few seconds (${Date.now() - started} ms)`)
    await received(kannel.messages, before + 1)
    t.equal(kannel.messages.at(-1)!.to, '+447400123458', `${mode}: the HTTP gateway took it`)
    const code = codeIn(kannel.messages.at(-1))
    sent.push(code)
    await verifyCode(app.commands, { serial: noor.serial, userId: noor.userId, code }, metadata())
    const attempts = (await eventsOf(noor.serial)).filter((e) => e.type === 'DeliveryAttempted' && e.data.challenge === issued.challenge)
    t.match(attempts.at(0), { data: { provider: 'smsc', result: mode === 'refuse' ? 'refused' : 'timeout', error: mode === 'refuse' ? 'refused' : 'no answer in time' } })
    t.match(attempts.at(-1), { data: { provider: 'kannel', result: 'accepted' } })
    if (mode === 'silent') t.equal(attempts.filter((a) => a.data.provider === 'smsc').length, 2, 'silent: tried twice before moving on')
    // Kannel's delivery report comes back to dlr-url, naming the job with its MAC.
    const deadline = Date.now() + 3000
    let delivered = false
    while (!delivered && Date.now() < deadline) {
      delivered = (await eventsOf(noor.serial)).some((e) => e.type === 'CodeDelivered' && e.data.challenge === issued.challenge && e.data.provider === 'kannel')
      if (!delivered) await new Promise((r) => setTimeout(r, 20))
    }
    t.ok(delivered, `${mode}: Kannel's delivery report is recorded`)
  }
  smsc.mode = 'accept'
  kannel.mode = 'refuse'
  smsc.mode = 'refuse'
  const issued = await issueChallenge(app.commands, limits, { serial: noor.serial, userId: noor.userId, sourceIp: '127.0.0.3', purpose: 'sign-in' }, metadata())
  t.equal(await worker.outcome(issued.deliveryId, 5000), 'failed', 'every provider refused: the user is told')
  t.match((await eventsOf(noor.serial)).at(-1), { type: 'ChallengeUndelivered', data: { reason: 'no-provider' } })
  smsc.mode = 'accept'
  kannel.mode = 'accept'
  const forged = await fetch(`${BASE}/delivery/kannel?ref=1.AAAAAAAAAAAAAAAAAAAAAA&type=1`)
  t.equal(forged.status, 404, 'a report that names no job of ours is refused')
})

t.test('e-mail goes through SMTP', async (t) => {
  const olga = await addUser(app, 'olga@example.com')
  const method = await registerSentCodeMethod(app.commands, { userId: olga.userId, kind: 'email', destination: 'olga@mail.example.com' }, metadata())
  t.equal(method.destination, 'o•••@mail.example.com')
  const issued = await issueChallenge(app.commands, limits, { serial: method.serial, userId: olga.userId, sourceIp: '127.0.0.4', purpose: 'activation' }, metadata())
  t.equal(await worker.outcome(issued.deliveryId, 5000), 'sent')
  t.match(mail.messages.at(-1), { to: 'olga@mail.example.com', text: /Your Tessera sign-in code is \d{6}\./ })
  const code = codeIn(mail.messages.at(-1))
  sent.push(code)
  const active = await activateToken(app.commands, { serial: method.serial, userId: olga.userId, name: 'Email', code }, metadata())
  t.equal(active.status, 'active')
})

t.test('a job written before a crash is sent after it; two workers send each job once', async (t) => {
  const pia = await phoneUser('pia@example.com', '+447400123459')
  await worker.stop()
  const before = smsc.messages.length
  // Queued while no worker runs (the process died after issuing): nothing is lost.
  const jobs = []
  for (let i = 0; i < 6; i++) {
    jobs.push(await issueChallenge(app.commands, limits, { serial: pia.serial, userId: pia.userId, sourceIp: `127.0.1.${i}`, purpose: 'sign-in' }, metadata()))
  }
  t.equal(smsc.messages.length, before, 'nothing sent yet')
  const workers = [0, 1].map(() => new DeliveryWorker(app.commands, providers.map((p) => makeProvider(p as never, 400)), { timeoutMs: 400 }))
  await Promise.all(workers.map((w) => w.round()))
  for (const job of jobs) t.match(await workers[0]!.outcome(job.deliveryId, 5000), /^(sent|delivered)$/)
  await received(smsc.messages, before + jobs.length)
  await new Promise((r) => setTimeout(r, 200))
  t.equal(smsc.messages.length - before, jobs.length, 'each job sent once, by one of the two workers')
  for (const m of smsc.messages.slice(before)) sent.push(codeIn(m))
  await Promise.all(workers.map((w) => w.stop()))
  worker = new DeliveryWorker(app.commands, providers.map((p) => makeProvider(p as never, 400)), { timeoutMs: 400 })
  worker.start()
})

t.test('the send budget: per user per hour, then a wait in words; nothing is queued past it', async (t) => {
  const user = await addUser(app, 'quinn@example.com')
  const method = await registerSentCodeMethod(app.commands, { userId: user.userId, kind: 'sms', destination: '+447400123460' }, metadata())
  for (let i = 0; i < DEFAULT_SETTINGS.sendsPerHour; i++) {
    await issueChallenge(app.commands, limits, { serial: method.serial, userId: user.userId, sourceIp: `10.0.0.${i}`, purpose: 'activation' }, metadata())
  }
  const queued = (await sql<{ n: number }>`select count(*)::int as n from deliveries where user_id = ${user.userId}`.execute(database.db)).rows[0]!.n
  await t.rejects(issueChallenge(app.commands, limits, { serial: method.serial, userId: user.userId, sourceIp: '10.0.1.1', purpose: 'activation' }, metadata()),
    { name: 'TooManySends', message: /^You asked for too many codes\. Wait 60 minutes, or choose another way to verify\.$/ })
  t.equal((await sql<{ n: number }>`select count(*)::int as n from deliveries where user_id = ${user.userId}`.execute(database.db)).rows[0]!.n, queued)
})

t.test('budgets: only queued codes count for the whole gateway; another account cannot use up a number\'s budget', async (t) => {
  const queued = async () => (await sql<{ n: number }>`select count(*)::int as n from deliveries where challenge is not null`.execute(database.db)).rows[0]!.n
  const counted = async () => (await sql<{ n: number }>`select coalesce(sum(sent), 0)::int as n from send_budget`.execute(database.db)).rows[0]!.n
  t.equal(await counted(), await queued(), 'refused sends (the budget test above) took nothing from the gateway-wide count')

  // Someone registers Lena's number as their own, unconfirmed, and asks for codes until their budget ends.
  const mallory = await addUser(app, 'mallory@example.com')
  const theirs = await registerSentCodeMethod(app.commands, { userId: mallory.userId, kind: 'sms', destination: '+447400123456' }, metadata())
  let refused: Error | null = null
  for (let i = 0; i <= DEFAULT_SETTINGS.sendsPerHour && !refused; i++) {
    await issueChallenge(app.commands, limits, { serial: theirs.serial, userId: mallory.userId, sourceIp: `10.1.0.${i}`, purpose: 'activation' }, metadata())
      .catch((error: Error) => { refused = error })
  }
  t.match(refused, { name: 'TooManySends' }, 'the one who asks runs out')
  const lena = await database.db.selectFrom('tokens').select(['serial', 'user_id']).where('kind', '=', 'sms').where('status', '=', 'active')
    .where('destination', '=', '+44 ••• ••• 456').executeTakeFirstOrThrow()
  await t.resolves(issueChallenge(app.commands, limits, { serial: lena.serial, userId: lena.user_id!, sourceIp: '10.2.0.1', purpose: 'sign-in' }, metadata()),
    'Lena still gets her code: unconfirmed sends count for the one who asked')

  // The whole gateway at its minute's limit: a refusal in other words, and nothing queued.
  const before = await queued()
  const full = { ...limits, sendsPerMinute: (await sql<{ n: number }>`select sent as n from send_budget order by minute desc limit 1`.execute(database.db)).rows[0]!.n }
  await t.rejects(issueChallenge(app.commands, full, { serial: lena.serial, userId: lena.user_id!, sourceIp: '10.2.0.2', purpose: 'sign-in' }, metadata()),
    { name: 'GatewayBusy', message: "We can't send codes right now. Try again in a minute, or choose another way to verify." })
  t.equal(await queued(), before)
})

t.test('a method keeps its code length when the policy changes', async (t) => {
  const ursa = await phoneUser('ursa@example.com', '+447400123462')
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'], sentCodeLength: 8 } }, metadata())
  const issued = await issueChallenge(app.commands, limits, { serial: ursa.serial, userId: ursa.userId, sourceIp: '10.3.0.1', purpose: 'sign-in' }, metadata())
  t.equal(await worker.outcome(issued.deliveryId, 5000), 'sent')
  const code = codeIn(smsc.messages.at(-1))
  sent.push(code)
  t.equal(code.length, 6, 'six digits, as when it was added')
  await t.resolves(verifyCode(app.commands, { serial: ursa.serial, userId: ursa.userId, code }, metadata()))
  await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'email', 'temporary_code'] } }, metadata())
})

t.test('an SMS centre that is down: the next provider takes the message', async (t) => {
  const rae = await phoneUser('rae@example.com', '+447400123461')
  await smsc.stop()
  const before = kannel.messages.length
  const issued = await issueChallenge(app.commands, limits, { serial: rae.serial, userId: rae.userId, sourceIp: '127.0.0.9', purpose: 'sign-in' }, metadata())
  t.equal(await worker.outcome(issued.deliveryId, 5000), 'sent')
  await received(kannel.messages, before + 1)
  t.equal(kannel.messages.at(-1)!.to, '+447400123461')
  sent.push(codeIn(kannel.messages.at(-1)))
  const attempts = (await eventsOf(rae.serial)).filter((e) => e.type === 'DeliveryAttempted' && e.data.challenge === issued.challenge)
  t.match(attempts.map((a) => [a.data.provider, a.data.result]), [['smsc', 'timeout'], ['smsc', 'timeout'], ['kannel', 'accepted']])
})

t.test('a job whose code expired before any worker took it is recorded as expired, never sent', async (t) => {
  const user = await addUser(app, 'sol@example.com')
  const method = await registerSentCodeMethod(app.commands, { userId: user.userId, kind: 'email', destination: 'sol@mail.example.com' }, metadata())
  const idle = new DeliveryWorker(app.commands, [], { timeoutMs: 400 })
  // The running worker would take the job before its expiry is moved back: stopped for this test.
  await worker.stop()
  t.teardown(() => {
    worker = new DeliveryWorker(app.commands, providers.map((p) => makeProvider(p as never, 400)), { timeoutMs: 400 })
    worker.start()
  })
  const issued = await issueChallenge(app.commands, limits, { serial: method.serial, userId: user.userId, sourceIp: '127.0.0.10', purpose: 'activation' }, metadata())
  // The code expires while the job waits (no worker took it, as after a long outage).
  await sql`update deliveries set expires_at = now() - interval '1 second' where id = ${issued.deliveryId}`.execute(database.db)
  const before = mail.messages.length
  await idle.round()
  t.equal(await idle.outcome(issued.deliveryId, 1000), 'expired')
  t.equal(mail.messages.length, before, 'not sent')
  t.match((await eventsOf(method.serial)).at(-1), { type: 'ChallengeUndelivered', data: { challenge: issued.challenge, reason: 'expired' } })
  const row = (await sql<{ message: Buffer | null }>`select message from deliveries where id = ${issued.deliveryId}`.execute(database.db)).rows[0]!
  t.equal(row.message, null, 'its message is erased')
})

t.test('ended jobs are forgotten after a day, the gateway-wide counts after an hour; pending jobs never', async (t) => {
  const old = new Date(Date.now() - 2 * 86_400_000)
  await sql`update deliveries set created_at = ${old} where id = (select min(id) from deliveries where status in ('sent', 'delivered'))`.execute(database.db)
  await sql`insert into send_budget (minute, sent) values (${old}, 5) on conflict do nothing`.execute(database.db)
  await sql`insert into deliveries (serial, challenge, user_id, channel, destination_hash, status, next_attempt_at, expires_at, created_at)
    values ('X', 1, 'nobody', 'sms', '\\x00', 'pending', ${new Date(Date.now() + 86_400_000)}, ${new Date(Date.now() + 86_400_000)}, ${old})`.execute(database.db)
  const count = async (q: string) => (await sql<{ n: number }>`select count(*)::int as n from deliveries where ${sql.raw(q)}`.execute(database.db)).rows[0]!.n
  t.equal(await count(`created_at < now() - interval '1 day'`), 2)
  await worker.prune()
  t.equal(await count(`created_at < now() - interval '1 day'`), 1, 'the ended one went, the pending one stayed')
  t.equal((await sql`select 1 from send_budget where minute = ${old}`.execute(database.db)).rows.length, 0)
  await sql`delete from deliveries where serial = 'X'`.execute(database.db)
})

t.test('no code, phone number or address in any event or log line', async (t) => {
  const events = JSON.stringify((await sql`select data, metadata from events`.execute(database.db)).rows)
  const everything = events + logs.join('\n')
  t.ok(sent.length >= 10)
  for (const code of sent) t.notOk(new RegExp(`\\b${code}\\b`).test(everything), `code ${code} nowhere`)
  for (const secret of ['7400123456', '7400123459', 'olga@mail.example.com']) t.notOk(everything.includes(secret), `${secret} nowhere`)
  const left = (await sql<{ n: number }>`select count(*)::int as n from deliveries where message is not null and status in ('sent', 'delivered', 'failed', 'expired')`.execute(database.db)).rows[0]!.n
  t.equal(left, 0, 'a message is erased once its job ended')
})
