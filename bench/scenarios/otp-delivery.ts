// otp-delivery: codes sent by text message, from "Send code" to the SMS centre. Each loop issues a challenge
// for its own user (issueChallenge: budgets, challenge, sealed job and ChallengeIssued in one transaction),
// wakes the delivery worker as the page does, and waits until an SMS centre on loopback (the `smpp` package's
// server) receives the submit_sm for that user's number; the time between is the latency. The worker is the
// gateway's own (DeliveryWorker with the SMPP provider), on this process.
//
// Setup (untimed): BENCH_DELIVERY_USERS users, each with a phone method programmed by an admin (active), a
// policy allowing 100 sends an hour each; the gateway-wide budgets are lifted for the run.
// Reference, in the same run: the plain rate the SMS centre accepts, submit_sm in a loop over one bound
// session with as many in flight as the scenario's loops, for a few seconds.
// Checks: none lost (every challenge issued reached the SMS centre), none sent twice.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import smpp, { type PDU, type Session } from 'smpp'
import { sql } from 'kysely'
import { setUserContact } from '../../src/commands/contacts.js'
import type { CommandContext } from '../../src/commands/context.js'
import { setPolicy } from '../../src/commands/policies.js'
import { registerUser } from '../../src/commands/users.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { issueChallenge, programSentCodeMethod } from '../../src/methods/sent-code/challenge.js'
import { DeliveryWorker } from '../../src/methods/sent-code/delivery.js'
import { smppProvider } from '../../src/methods/sent-code/providers/smpp.js'
import { benchMetadata } from '../lib/fixtures.js'
import { cpuSince, latencySummary, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const TARGET = { opsPerSec: 500, p99Ms: 100 }

/** An SMS centre on loopback: binds anyone, answers every submit_sm, tells the bench what arrived for whom. */
async function smsCentre(onSubmit: (to: string) => void) {
  let id = 0
  const sessions = new Set<Session>()
  const server = smpp.createServer((session) => {
    sessions.add(session)
    session.on('error', () => {})
    session.on('close', () => sessions.delete(session))
    session.on('bind_transceiver', (pdu: PDU) => session.send(pdu.response()))
    session.on('enquire_link', (pdu: PDU) => session.send(pdu.response()))
    session.on('unbind', (pdu: PDU) => { session.send(pdu.response()); session.close() })
    session.on('submit_sm', (pdu: PDU) => {
      session.send(pdu.response({ message_id: `m${++id}` }))
      onSubmit(`+${pdu.destination_addr}`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    url: `smpp://bench:bench@127.0.0.1:${server.address().port}`,
    close: () => new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/** The plain rate: submit_sm as fast as the SMS centre answers, `inFlight` at a time, for `seconds`. */
async function plainRate(url: string, inFlight: number, seconds: number): Promise<number> {
  const u = new URL(url)
  const session = smpp.connect({ url: `smpp://${u.host}` })
  await new Promise<void>((resolve, reject) => {
    session.once('error', reject)
    session.bind_transceiver({ system_id: 'bench', password: 'bench' }, (pdu) => (pdu.command_status === 0 ? resolve() : reject(new Error('bind refused'))))
  })
  let sent = 0
  const deadline = performance.now() + seconds * 1000
  const start = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async (_, i) => {
    while (performance.now() < deadline) {
      await new Promise<void>((resolve) => session.submit_sm({ destination_addr: `4474000${String(i).padStart(5, '0')}`, short_message: '123456 is your Tessera code.' }, () => resolve()))
      sent++
    }
  }))
  const rate = sent / ((performance.now() - start) / 1000)
  await new Promise<void>((resolve) => session.close(() => resolve()))
  return rate
}

export const otpDelivery: Scenario = {
  name: 'otp-delivery',
  description: 'texted codes: challenge issued -> delivery job -> worker -> SMPP submit_sm on loopback, p50/p99',
  target: { opsPerSec: TARGET.opsPerSec },
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const seconds = Number(process.env.BENCH_DELIVERY_SECONDS ?? 30)
    const users = Number(process.env.BENCH_DELIVERY_USERS ?? 400)
    const loops = Math.min(Number(process.env.BENCH_DELIVERY_LOOPS ?? ctx.options.concurrency), users)
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }
    const admin = { ...benchMetadata('bench-delivery-setup'), actor: { type: 'admin' as const, id: 'bench' } }

    const waiting = new Map<string, () => void>()
    const received = new Map<string, number>()
    const centre = await smsCentre((to) => {
      received.set(to, (received.get(to) ?? 0) + 1)
      const done = waiting.get(to)
      if (done) {
        waiting.delete(to)
        done()
      }
    })
    ctx.log(`otp-delivery: plain SMPP rate with ${loops} in flight (reference, 3 s)`)
    const plain = await plainRate(centre.url, loops, 3)
    received.clear()

    ctx.log(`otp-delivery: ${users} users with a phone method (untimed)`)
    await setPolicy(commands, 'default', { name: 'Default', priority: 1000,
      settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'sms', 'temporary_code'], sendsPerHour: 100 } }, admin)
    const people = await Promise.all(Array.from({ length: users }, async (_, i) => {
      const upn = `bench-delivery-${ctx.runId}-${i}@bench.example`
      const user = await registerUser(commands, { upn, displayName: `Bench ${i}`, password: 'correct horse battery' }, admin)
      const mobile = `+4474${String(10_000_000 + i).slice(-8)}`
      await setUserContact(commands, { upn, mobile }, admin)
      const method = await programSentCodeMethod(commands, { userId: user.userId, kind: 'sms' }, admin)
      return { userId: user.userId, serial: method.serial, mobile, issued: 0, meta: { ...benchMetadata(`bench-delivery-${i}`), actor: { type: 'user' as const, id: user.userId } } }
    }))
    const worker = new DeliveryWorker(commands, [smppProvider({ name: 'smsc', url: centre.url }, 3000)], { timeoutMs: 3000 })
    worker.start()
    const limits = { sendsPerAddressPerHour: 1_000_000, sendsPerMinute: 1_000_000 }

    ctx.log(`otp-delivery: ${loops} loops for ${seconds}s`)
    const latencies = new Samples()
    let errors = 0
    let firstError: string | null = null
    let next = 0
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    const deadline = start + seconds * 1000
    await Promise.all(Array.from({ length: loops }, async () => {
      while (performance.now() < deadline) {
        const person = people[next++ % people.length]!
        if (waiting.has(person.mobile) || person.issued >= 100) continue
        const t0 = performance.now()
        const arrived = new Promise<void>((resolve) => waiting.set(person.mobile, resolve))
        try {
          await issueChallenge(commands, limits, { serial: person.serial, userId: person.userId, sourceIp: null, purpose: 'sign-in' }, person.meta)
          person.issued++
          worker.wake()
          await arrived
          latencies.push(performance.now() - t0)
        } catch (error) {
          waiting.delete(person.mobile)
          errors++
          firstError ??= `${(error as Error).name}: ${(error as Error).message}`
          if (errors > 100) return
        }
      }
    }))
    const elapsed = (performance.now() - start) / 1000
    const { seconds: cpuSeconds } = cpuSince(cpuStart)
    // Drain: whatever was issued must arrive.
    const drainUntil = performance.now() + 10_000
    const issued = people.reduce((n, p) => n + p.issued, 0)
    const arrivedCount = () => [...received.values()].reduce((a, b) => a + b, 0)
    while (arrivedCount() < issued && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 50))
    await worker.stop()
    await centre.close()
    const duplicates = people.filter((p) => (received.get(p.mobile) ?? 0) > p.issued).length
    const lost = people.reduce((n, p) => n + Math.max(0, p.issued - (received.get(p.mobile) ?? 0)), 0)
    const pending = (await sql<{ n: number }>`select count(*)::int as n from deliveries where status in ('pending', 'sending')`.execute(ctx.db)).rows[0]!.n
    const latency = latencySummary(latencies)
    const rate = latencies.length / elapsed
    return {
      unit: 'challenges',
      operations: latencies.length,
      seconds: elapsed,
      latencyMs: latency,
      checks: [
        { name: 'none lost', pass: lost === 0 && pending === 0, detail: `${issued} issued, ${arrivedCount()} received by the SMS centre, ${pending} jobs left` },
        { name: 'none sent twice', pass: duplicates === 0, detail: `${duplicates} users received more messages than were issued for them` },
        { name: 'no error', pass: errors === 0, detail: firstError ?? 'none' },
        { name: `p99 <= ${TARGET.p99Ms} ms`, pass: latency.p99 <= TARGET.p99Ms, detail: `p99 ${round(latency.p99)} ms` },
      ],
      details: {
        plainSmppPerSec: round(plain), ratioToPlainSmpp: round(rate / plain, 3), loops, users,
        nodeCpuMsPerChallenge: round((cpuSeconds * 1000) / Math.max(1, latencies.length), 3),
      },
    }
  },
}
