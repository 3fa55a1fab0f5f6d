// remote: codes for remote credentials, checked by a real FreeRADIUS on loopback (Debian's, started as
// test/helpers/freeradius.ts starts it: PAP against a users file, Message-Authenticator required on requests
// and sent on replies, reject_delay 0). The gateway's check is the sign-in code page's command,
// verifyCodeFromAny (the user's tokens, the token row, the code's reservation, the Access-Request, the
// OtpVerified write); beside it, in the same run, the same Access-Requests sent straight to FreeRADIUS with
// radclient, and with our own RADIUS client (radiusValidate) alone. The bar: the gateway costs at most
// 1.5 times the direct requests (direct requests/s over gateway verifications/s).
//
// A code is accepted once, and FreeRADIUS's users file gives each user one password: so one user per
// verification (BENCH_REMOTE_VERIFICATIONS, default 10,000), each with a fixed random 6-digit code, and as
// many gateway users holding that RADIUS user as their remote credential.
//
// Setup (untimed): FreeRADIUS with every user; the service configured with configureRemoteService; a policy
// allowing `remote`, assigned to a group of the run; the users written in batches with the events and rows
// registerUser and changeGroup write (one scrypt hash for all: hashing 10,000 passwords would take minutes
// and nothing here signs in with them); BENCH_CONCURRENCY warm-up users given their credential with
// assignRemoteCredential, the measured ones in batches with the same events; a warm-up through each path.
// Timed, one after the other, BENCH_CONCURRENCY at a time: radclient, radiusValidate, the gateway.
import { spawn } from 'node:child_process'
import { randomBytes, randomInt, randomUUID } from 'node:crypto'
import { readFileSync, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { appendStreamsWithProjections } from '../../src/commands/append.js'
import type { CommandContext } from '../../src/commands/context.js'
import { assignPolicy, setPolicy } from '../../src/commands/policies.js'
import { methodChange, verifyCodeFromAny } from '../../src/commands/tokens.js'
import { hashPassword } from '../../src/crypto/password.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { DEFAULT_SETTINGS } from '../../src/domain/policy/events.js'
import { decide } from '../../src/domain/token/decide.js'
import { tokenStream } from '../../src/domain/token/events.js'
import { initialState } from '../../src/domain/token/state.js'
import { decideUser } from '../../src/domain/user/decide.js'
import { userStream } from '../../src/domain/user/events.js'
import { initialUserState } from '../../src/domain/user/state.js'
import type { EventMetadata } from '../../src/event-store/types.js'
import { assignRemoteCredential } from '../../src/methods/remote/credentials.js'
import { radiusValidate, type RadiusOptions } from '../../src/methods/remote/radius.js'
import { configureRemoteService } from '../../src/methods/remote/services.js'
import { LEVELS } from '../../src/oidc/provider.js'
import { launchFreeRadius, type FreeRadius } from '../../test/helpers/freeradius.js'
import { benchMetadata } from '../lib/fixtures.js'
import { countStatements } from '../lib/pg-count.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { cpuSince, latencySummary, round, Samples } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

/** The bar: direct requests/s at most this many times the gateway's verifications/s. */
const MAX_COST_FACTOR = 1.5
const SERVICE = 'bench-radius'
const RELYING_APPLICATION = 'bench'
/** Users (or credentials) written per transaction in the setup. */
const USER_BATCH = 1000
/**
 * Requests per radclient run. radclient keeps a file's requests in one list that it walks again for every
 * reply, so a run's time grows with the square of its count (20,000 in one file: 2,400/s here), and each
 * run reads the dictionaries first (about 55 ms): 2,000 a run is about the fastest.
 */
const RADCLIENT_FILE_REQUESTS = 2000
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's utime and stime. */
const TICKS_PER_SECOND = 100

interface Person {
  /** The RADIUS user name, also the credential's id at the service. */
  radiusUser: string
  code: string
  userId: string
  meta: EventMetadata
}

/** CPU seconds a process of this machine used so far (FreeRADIUS), or null when /proc cannot say. */
function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
  } catch {
    return null
  }
}

function spent(start: number | null, end: number | null): number | null {
  return start === null || end === null ? null : end - start
}

function perRequestUs(cpuSeconds: number | null, requests: number): number | string {
  return cpuSeconds === null || requests === 0 ? 'n/a' : round((cpuSeconds * 1e6) / requests, 1)
}

/** Writes the users as registerUser then changeGroup would (UserRegistered, UserPasswordSet, UserAddedToGroup), a batch per transaction. */
async function addUsers(ctx: BenchContext, people: { upn: string; displayName: string }[], group: string, meta: EventMetadata): Promise<string[]> {
  const passwordHash = await hashPassword('correct horse battery')
  const ids: string[] = []
  for (let from = 0; from < people.length; from += USER_BATCH) {
    const batch = people.slice(from, from + USER_BATCH).map((p) => {
      const userId = randomUUID()
      const registered = decideUser(initialUserState(userId), { type: 'RegisterUser', data: { userId, ...p } })
      const upn = (registered[0]!.data as { upn: string }).upn
      const joined = decideUser({ ...initialUserState(userId), exists: true, upn, version: registered.length }, { type: 'JoinGroup', data: { group } })
      return { userId, events: [...registered, ...joined] }
    })
    await ctx.db.transaction().execute(async (trx) => {
      await appendStreamsWithProjections({ db: trx, store: ctx.store, deferCommit: true },
        batch.map((b) => ({ streamId: userStream(b.userId), expected: 'no-stream' as const, events: b.events })), meta)
      await sql`insert into user_credentials (user_id, password_hash)
        select id, ${passwordHash} from unnest(${batch.map((b) => b.userId)}::text[]) as id`.execute(trx)
    })
    ctx.store.committed()
    ids.push(...batch.map((b) => b.userId))
  }
  return ids
}

/**
 * Gives each user their credential with the events and rows assignRemoteCredential writes (RemoteCredentialAssigned
 * and SignInMethodAdded, decided by the same functions; no notice, as the users have no e-mail address), a batch
 * per transaction: the command takes the service's lock to its commit, so 10,000 of them would take minutes.
 */
async function addCredentials(ctx: BenchContext, people: readonly Person[], meta: EventMetadata): Promise<string[]> {
  const serials: string[] = []
  for (let from = 0; from < people.length; from += USER_BATCH) {
    const writes = people.slice(from, from + USER_BATCH).flatMap((p) => {
      const serial = `REMOTE-${randomBytes(6).toString('hex').toUpperCase()}`
      serials.push(serial)
      const { events, refusal } = decide(initialState(serial), { type: 'AssignRemoteCredential', data: { userId: p.userId, service: SERVICE, credential: p.radiusUser, digits: 6 } })
      const change = methodChange(initialState(serial), events, meta)
      if (refusal || !change) throw new Error(`remote setup: ${serial} was not given (${refusal?.message ?? 'no SignInMethodAdded'})`)
      return [
        { streamId: tokenStream(serial), expected: 'no-stream' as const, events },
        { streamId: userStream(p.userId), expected: 'any' as const, events: [change] },
      ]
    })
    await appendStreamsWithProjections({ db: ctx.db, store: ctx.store }, writes, meta)
  }
  return serials
}

/** Runs `work` on each item, `loops` at a time, each loop taking the next; latencies in ms and errors. */
async function drive<T>(items: readonly T[], loops: number, work: (item: T) => Promise<void>) {
  const latencies = new Samples()
  let errors = 0
  let firstError: string | null = null
  let next = 0
  const start = performance.now()
  await Promise.all(Array.from({ length: Math.min(loops, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!
      const t0 = performance.now()
      try {
        await work(item)
        latencies.push(performance.now() - t0)
      } catch (error) {
        errors++
        firstError ??= `${(error as Error).name}: ${(error as Error).message}`
      }
    }
  }))
  return { latencies, errors, firstError, seconds: (performance.now() - start) / 1000 }
}

function run(command: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    let out = ''
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')))
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')))
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error('radclient is needed for the remote scenario: apt-get install freeradius-utils') : error))
    child.on('exit', (code) => resolve({ code, out }))
  })
}

/** radclient's -s summary: Accepted, Rejected and Lost, summed over the runs. */
function summary(out: string): { accepted: number; rejected: number; lost: number } {
  const count = (name: string) => Number(new RegExp(`${name}\\s*:\\s*(\\d+)`).exec(out)?.[1] ?? NaN)
  return { accepted: count('Accepted'), rejected: count('Rejected'), lost: count('Lost') }
}

/** The Access-Requests radiusValidate sends (Message-Authenticator, User-Name, User-Password, NAS-Identifier), as radclient files. */
async function radclientFiles(dir: string, name: string, people: readonly Person[], nasIdentifier: string): Promise<string[]> {
  const files: string[] = []
  for (let from = 0; from < people.length; from += RADCLIENT_FILE_REQUESTS) {
    const file = path.join(dir, `${name}-${from}.txt`)
    const requests = people.slice(from, from + RADCLIENT_FILE_REQUESTS).map((p) =>
      `Message-Authenticator = 0x00\nUser-Name = "${p.radiusUser}"\nUser-Password = "${p.code}"\nNAS-Identifier = "${nasIdentifier}"\n`)
    await fs.writeFile(file, requests.join('\n'))
    files.push(file)
  }
  return files
}

/** The files one after the other, each with `parallel` requests in flight: the totals and the wall time. */
async function radclient(files: readonly string[], server: FreeRadius, parallel: number) {
  const totals = { accepted: 0, rejected: 0, lost: 0 }
  const start = performance.now()
  for (const file of files) {
    const { code, out } = await run('radclient', ['-f', file, '-p', String(parallel), '-q', '-s', `${server.host}:${server.port}`, 'auth', server.secret])
    const s = summary(out)
    if (code !== 0 && s.rejected === 0 && s.lost === 0) throw new Error(`radclient exited with ${code}: ${out.trim().slice(0, 300)}`)
    totals.accepted += s.accepted
    totals.rejected += s.rejected
    totals.lost += s.lost
  }
  return { ...totals, seconds: (performance.now() - start) / 1000 }
}

/** A radclient run's fixed cost (start, dictionaries, one Status-Server): the median of five. */
async function radclientStartMs(dir: string, server: FreeRadius): Promise<number> {
  const file = path.join(dir, 'status.txt')
  await fs.writeFile(file, 'Message-Authenticator = 0x00\n')
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    await run('radclient', ['-f', file, '-q', `${server.host}:${server.port}`, 'status', server.secret])
    times.push(performance.now() - t0)
  }
  return times.sort((a, b) => a - b)[2]!
}

export const remote: Scenario = {
  name: 'remote',
  description: 'verifyCodeFromAny on remote credentials through FreeRADIUS on loopback, beside the same Access-Requests sent straight with radclient and radiusValidate',
  // The check that matters is the cost factor to the direct requests in the same run (<= 1.5). This is verify's
  // target, and about what 1.5 times radclient's rate asks of the gateway here (radclient: 7,000 to 12,000/s).
  target: { opsPerSec: 5000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const count = Number(process.env.BENCH_REMOTE_VERIFICATIONS ?? 10_000)
    if (!Number.isInteger(count) || count <= 0) throw new Error(`BENCH_REMOTE_VERIFICATIONS must be a whole number > 0, not ${process.env.BENCH_REMOTE_VERIFICATIONS}`)
    const loops = ctx.options.concurrency
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }
    const admin = { ...benchMetadata('bench-remote-setup'), actor: { type: 'admin' as const, id: 'bench' } }
    const teardown: (() => Promise<void>)[] = []
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-bench-remote-'))
    try {
      // Warm-up users first, then the measured ones; RADIUS user names and codes are the run's own.
      const total = loops + count
      const names = Array.from({ length: total }, (_, i) => `r${ctx.runId}-${String(i).padStart(6, '0')}`)
      const codes = names.map(() => String(randomInt(1_000_000)).padStart(6, '0'))
      const secret = randomBytes(16).toString('hex')

      ctx.log(`remote: FreeRADIUS with ${total} users (untimed)`)
      let t0 = performance.now()
      const server = await launchFreeRadius((fn) => teardown.push(fn), {
        users: Object.fromEntries(names.map((n, i) => [n, codes[i]!])), secret, authLog: false,
      })
      const radiusStartSeconds = (performance.now() - t0) / 1000

      ctx.log(`remote: the service, a policy, ${total} users and their credentials (untimed)`)
      t0 = performance.now()
      await configureRemoteService(commands, { id: SERVICE, name: 'Bench FreeRADIUS', protocol: 'radius', servers: [`${server.host}:${server.port}`], secret }, admin)
      const group = `bench-remote-${ctx.runId}`
      await setPolicy(commands, group, { name: 'Bench remote credentials', priority: 100,
        settings: { ...DEFAULT_SETTINGS, methods: ['hardware', 'remote', 'temporary_code'] } }, admin)
      await assignPolicy(commands, group, { kind: 'group', id: group }, admin)
      const userIds = await addUsers(ctx, names.map((n, i) => ({ upn: `${n}@bench.example`, displayName: `Bench remote ${i}` })), group, admin)
      const people: Person[] = names.map((radiusUser, i) => ({
        radiusUser, code: codes[i]!, userId: userIds[i]!,
        meta: { ...benchMetadata(`bench-remote-${i}`), actor: { type: 'user' as const, id: userIds[i]! }, relyingApplication: RELYING_APPLICATION },
      }))
      const warmUp = people.slice(0, loops)
      const measured = people.slice(loops)
      // The warm-up users' credentials through the command itself; the measured ones' in bulk, the same events.
      for (const p of warmUp) await assignRemoteCredential(commands, { userId: p.userId, service: SERVICE, credential: p.radiusUser }, admin)
      const serials = await addCredentials(ctx, measured, admin)
      const setupSeconds = (performance.now() - t0) / 1000
      await sql`vacuum (analyze) users, tokens, streams, remote_codes`.execute(ctx.db)

      // The client the gateway makes of the service (services.ts makeClient): one attempt and one retry, each 2.5 s.
      const direct: RadiusOptions = {
        servers: [{ host: server.host, port: server.port, secret }], retries: 1, nasIdentifier: 'tessera', timeoutMs: 2500,
      }
      const files = await radclientFiles(dir, 'measured', measured, direct.nasIdentifier)
      const startMs = await radclientStartMs(dir, server)
      await radclient(await radclientFiles(dir, 'warm-up', warmUp, direct.nasIdentifier), server, loops)
      await drive(warmUp, loops, async (p) => { await radiusValidate(direct, p.radiusUser, p.code) })

      // B: radclient, the same Access-Requests.
      ctx.log(`remote: ${count} Access-Requests with radclient, ${loops} in flight`)
      const radiusd = () => processCpuSeconds(server.pid)
      let radiusd0 = radiusd()
      const viaRadclient = await radclient(files, server, loops)
      const radclientRadiusdCpu = spent(radiusd0, radiusd())

      // C: radiusValidate alone, our client without the gateway's database work.
      ctx.log(`remote: ${count} Access-Requests with radiusValidate, ${loops} at a time`)
      let rejected = 0
      radiusd0 = radiusd()
      let cpuStart = process.cpuUsage()
      const viaClient = await drive(measured, loops, async (p) => {
        const answer = await radiusValidate(direct, p.radiusUser, p.code)
        if (answer.result !== 'accept') {
          rejected++
          throw new Error(`${answer.result}: ${answer.reason}`)
        }
      })
      const clientCpu = cpuSince(cpuStart)
      const clientRadiusdCpu = spent(radiusd0, radiusd())

      // A: the gateway. Warm-up first: the pool's connections, the service's client, the code path.
      const gatewayVerify = (p: Person) => verifyCodeFromAny(commands, { userId: p.userId, code: p.code, relyingApplication: RELYING_APPLICATION, level: LEVELS.mfa }, p.meta)
      const warmed = await drive(warmUp, loops, async (p) => { await gatewayVerify(p) })
      if (warmed.errors > 0) throw new Error(`remote warm-up: ${warmed.errors} verifications failed (${warmed.firstError})`)
      ctx.log(`remote: ${count} verifications through the gateway, ${loops} at a time`)
      radiusd0 = radiusd()
      const server0 = await backendCpu(ctx.db)
      const statements = countStatements()
      cpuStart = process.cpuUsage()
      const viaGateway = await drive(measured, loops, async (p) => { await gatewayVerify(p) })
      const gatewayCpu = cpuSince(cpuStart)
      const statementCount = statements.stop()
      const serverCpuSeconds = backendCpuSeconds(server0, await backendCpu(ctx.db))
      const gatewayRadiusdCpu = spent(radiusd0, radiusd())

      const events = Number((await sql<{ n: string }>`select count(*) as n from events
        where stream_id = any(${serials.map(tokenStream)}::text[]) and type = 'OtpVerified'`.execute(ctx.db)).rows[0]!.n)
      const done = viaGateway.latencies.length
      const gatewayRate = done / viaGateway.seconds
      const radclientRate = viaRadclient.accepted / viaRadclient.seconds
      const clientRate = viaClient.latencies.length / viaClient.seconds
      const factor = radclientRate / gatewayRate
      const clientFactor = clientRate / gatewayRate
      const radclientWithoutStarts = viaRadclient.seconds - (files.length * startMs) / 1000
      const notes = [
        'radclient gives no per-request latency: its figure is requests/s over the wall time of its runs, process starts included',
        `radclient started ${files.length} times (${RADCLIENT_FILE_REQUESTS} requests a run, about ${round(startMs)} ms a start): ` +
          `${Math.round(viaRadclient.accepted / radclientWithoutStarts)}/s without the starts`,
      ]
      if (viaGateway.firstError) notes.push(`first gateway error: ${viaGateway.firstError}`)
      if (viaClient.firstError) notes.push(`first radiusValidate error: ${viaClient.firstError}`)
      const client = latencySummary(viaClient.latencies)
      return {
        unit: 'verifications',
        operations: done,
        seconds: viaGateway.seconds,
        latencyMs: latencySummary(viaGateway.latencies),
        checks: [
          { name: 'every code accepted by the gateway', pass: viaGateway.errors === 0 && done === count, detail: `${done} of ${count}, ${viaGateway.errors} failed` },
          { name: 'one OtpVerified event per verification', pass: events === done, detail: `${events} events, ${done} verifications` },
          {
            name: 'every direct request accepted',
            pass: viaRadclient.accepted === count && viaClient.latencies.length === count,
            detail: `radclient: ${viaRadclient.accepted} accepted, ${viaRadclient.rejected} rejected, ${viaRadclient.lost} lost; radiusValidate: ${viaClient.latencies.length} accepted, ${rejected} not`,
          },
          {
            name: `the gateway costs at most ${MAX_COST_FACTOR} times the direct requests`,
            pass: factor <= MAX_COST_FACTOR,
            detail: `radclient ${Math.round(radclientRate)}/s vs gateway ${Math.round(gatewayRate)}/s in this run: factor ${round(factor, 2)} ` +
              `(radiusValidate ${Math.round(clientRate)}/s: factor ${round(clientFactor, 2)})`,
          },
        ],
        details: {
          verifications: count,
          loops,
          gatewayPerSec: Math.round(gatewayRate),
          radclientPerSec: Math.round(radclientRate),
          radclientSeconds: round(viaRadclient.seconds, 2),
          radclientRuns: files.length,
          radclientStartMs: round(startMs, 1),
          radiusValidatePerSec: Math.round(clientRate),
          radiusValidateP50Ms: client.p50,
          radiusValidateP99Ms: client.p99,
          costFactorRadclient: round(factor, 2),
          costFactorRadiusValidate: round(clientFactor, 2),
          // Node's CPU (user + kernel) per request: the protocol client alone, then the whole gateway path.
          radiusValidateNodeCpuUs: perRequestUs(clientCpu.seconds, viaClient.latencies.length),
          gatewayNodeCpuUs: perRequestUs(gatewayCpu.seconds, done),
          gatewayNodeCpuSystemShare: round(gatewayCpu.systemShare, 2),
          // FreeRADIUS's CPU per request in each phase: the server is the same, the load on it differs.
          radiusdCpuUsRadclient: perRequestUs(radclientRadiusdCpu, viaRadclient.accepted),
          radiusdCpuUsRadiusValidate: perRequestUs(clientRadiusdCpu, viaClient.latencies.length),
          radiusdCpuUsGateway: perRequestUs(gatewayRadiusdCpu, done),
          ...(serverCpuSeconds === null ? {} : { serverBackendCpuUsPerVerification: perRequestUs(serverCpuSeconds, done) }),
          // The user's tokens and the code's reservation, one each; the token loads and OtpVerified writes of
          // concurrent verifications go out together (the token loader, group commit).
          sqlStatementsPerVerification: done > 0 ? round(statementCount / done, 2) : 0,
          freeRadiusStartSeconds: round(radiusStartSeconds, 2),
          setupSeconds: round(setupSeconds, 1),
        },
        notes,
      }
    } finally {
      for (const stop of teardown) await stop().catch(() => {})
      await fs.rm(dir, { recursive: true, force: true })
    }
  },
}
