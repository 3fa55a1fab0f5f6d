// Two gateway processes sharing PostgreSQL, each with its delivery worker: codes issued on one while its
// worker is gone (as if it died after issuing) are sent by the other; with both working, every job is handed
// to the SMS centre once.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { setPolicy } from '../../src/commands/policies.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { issueChallenge, registerSentCodeMethod } from '../../src/methods/sent-code/challenge.js'
import { DeliveryWorker } from '../../src/methods/sent-code/delivery.js'
import { makeProvider } from '../../plugins/delivery.js'
import { addUser, testApp } from '../helpers/app.js'
import { metadata } from '../helpers/database.js'
import { freePort } from '../helpers/net.js'
import { startSecondGateway } from '../helpers/second-gateway.js'
import { received, smscPeer } from '../helpers/peers.js'

const smsc = await smscPeer(t)
const providers = JSON.stringify([{ name: 'smsc', type: 'smpp', url: smsc.url }])
const [port1, port2] = [await freePort(), await freePort()]
const shared = { PUBLIC_URL: `http://127.0.0.1:${port1}`, TESSERA_MASTER_KEY: randomBytes(32).toString('base64'),
  TESSERA_SESSION_KEY: randomBytes(32).toString('base64'), TESSERA_DELIVERY_PROVIDERS: providers }
const { app, database } = await testApp(t, { ...shared, PORT: String(port1) })
await setPolicy(app.commands, 'default', { name: 'Default', priority: 1000, settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms'], sendsPerHour: 100 } }, metadata())
const zoe = await addUser(app, 'zoe@example.com')
const phone = await registerSentCodeMethod(app.commands, { userId: zoe.userId, kind: 'sms', destination: '+447400123499' }, metadata())
const limits = { sendsPerAddressPerHour: 1000, sendsPerMinute: 1000 }
const issue = () => issueChallenge(app.commands, limits, { serial: phone.serial, userId: zoe.userId, sourceIp: null, purpose: 'activation' }, metadata())
const acceptedNow = async () => Number((await sql<{ n: string }>`select count(*) as n from events
  where stream_id = ${`token-${phone.serial}`} and type = 'DeliveryAttempted' and data->>'result' = 'accepted'`.execute(database.db)).rows[0]!.n)

/** The accepted attempts recorded, once there are `n` (a worker records a round after its sends). */
async function accepted(n: number): Promise<number> {
  const deadline = Date.now() + 5000
  let count = await acceptedNow()
  while (count < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
    count = await acceptedNow()
  }
  return count
}

// This process's own worker is gone, as if the process died right after issuing.
await app.delivery.stop()

t.test('codes issued while this process has no worker are sent by the other process', async (t) => {
  const jobs = []
  for (let i = 0; i < 5; i++) jobs.push(await issue())
  t.equal(smsc.messages.length, 0, 'nothing sent while no worker runs')

  await startSecondGateway(t, { ...shared, DATABASE_URL: database.url }, port2)
  await received(smsc.messages, jobs.length, 10_000)
  t.equal(smsc.messages.length, jobs.length, 'every job sent, by the other process')
  t.equal(await accepted(jobs.length), jobs.length)

  // Both processes working: this one gets a worker again; 30 more jobs, each handed over once.
  const worker = new DeliveryWorker(app.commands, [makeProvider({ name: 'smsc', type: 'smpp', url: smsc.url }, 3000)], { timeoutMs: 3000, pollMs: 20 })
  worker.start()
  t.teardown(() => worker.stop())
  // One user asks for codes one after the other (as a person does); the two workers race for the jobs.
  const more = []
  for (let i = 0; i < 30; i++) more.push(await issue())
  await received(smsc.messages, jobs.length + more.length, 10_000)
  await new Promise((r) => setTimeout(r, 500))
  t.equal(smsc.messages.length, jobs.length + more.length, 'each job sent once, whichever process took it')
  t.equal(await accepted(jobs.length + more.length), jobs.length + more.length)
  const left = (await sql<{ n: number }>`select count(*)::int as n from deliveries where status in ('pending', 'sending')`.execute(database.db)).rows[0]!.n
  t.equal(left, 0)
})
