// SIGKILL in the middle of work, on the real PostgreSQL: a process importing an inventory while it verifies
// codes and disables and enables tokens (test/helpers/crash-load.ts), and `tessera projections rebuild`.
// Afterwards every change the database acknowledged is in the log, nothing is doubled, every hash chain
// verifies, the read models rebuilt from the log equal the live ones, and the same import run again
// completes, reporting the rows already in as such.
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { sql } from 'kysely'
import { activateToken } from '../../src/commands/tokens.js'
import { importTokens } from '../../src/commands/import-tokens.js'
import { verifyChains } from '../../src/event-store/verify.js'
import { parseInventory } from '../../src/import/index.js'
import { addUser, importEntra, testApp } from '../helpers/app.js'
import { BIN } from '../helpers/cli.js'
import { crashInventory } from '../helpers/crash-inventory.js'
import { metadata } from '../helpers/database.js'
import { assertRebuildEqual } from '../helpers/rebuild.js'
import { seedOf } from '../helpers/seeds.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const ROWS = 50_000
const MASTER = randomBytes(32).toString('base64')
const { app, database } = await testApp(t, { TESSERA_MASTER_KEY: MASTER })
const { db, store } = database
const env = { ...process.env, DATABASE_URL: database.url, TESSERA_MASTER_KEY: MASTER } as Record<string, string>
delete env.NODE_OPTIONS

// Eight HOTP tokens in use, their codes from oathtool (counter 0 activates; 1 to 400 to verify), and four to switch off and on.
const hotp = Array.from({ length: 8 }, (_, i) => `HK-${i}`)
const toggled = Array.from({ length: 4 }, (_, i) => `TG-${i}`)
const oathtool = (hex: string, from: number, count: number) =>
  execFileSync('oathtool', ['--hotp', '-c', String(from), '-w', String(count - 1), hex], { encoding: 'utf8' }).trim().split('\n')
const owner = await addUser(app, 'crash@example.com')
await importEntra(app, toggled.map((s) => `,${s},${seedOf(s).b32},30,Token2,C202`))
const codes: Record<string, { userId: string; codes: string[] }> = {}
for (const serial of hotp) {
  const user = await addUser(app, `${serial.toLowerCase()}@example.com`)
  await app.inject({ method: 'GET', url: '/healthz' })
  // An HOTP token from an OATH CSV (serial, seed, type, digits).
  const { parseInventory: parse } = await import('../../src/import/index.js')
  await importTokens(app.commands, parse('oath', (async function* () { yield `${serial}, ${seedOf(serial).hex}, hotp, 6\n` })()), metadata(), { format: 'oath' })
  const [first, ...rest] = oathtool(seedOf(serial).hex, 0, 401)
  await activateToken(app.commands, { serial, userId: user.userId, name: 'fob', code: first! }, metadata())
  codes[serial] = { userId: user.userId, codes: rest }
}
void owner
const codesFile = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-crash-')), 'codes.json')
await fs.writeFile(codesFile, JSON.stringify(codes))
t.teardown(() => fs.rm(path.dirname(codesFile), { recursive: true, force: true }))

/** Waits until no server session of a killed `tessera` process (application tessera-cli) is left. */
async function backendsGone() {
  for (let i = 0; i < 200; i++) {
    const left = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where datname = current_database() and application_name = 'tessera-cli'`.execute(db)
    if (Number(left.rows[0]!.n) === 0) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the killed process\'s database sessions did not end')
}

const count = async (where = sql`true`) => Number((await sql<{ n: string }>`select count(*) as n from events where ${where}`.execute(db)).rows[0]!.n)

t.test('killed while importing, verifying and changing tokens: every acknowledged change is there, once', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/crash-load.ts'], {
    cwd: ROOT, env: { ...env, CRASH_ROWS: String(ROWS), CRASH_CODES: codesFile, CRASH_TOGGLE: toggled.join(',') },
  })
  const acks: [string, number][] = []
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => {
    out += String(d)
    const lines = out.split('\n')
    out = lines.pop()!
    for (const l of lines) {
      const m = /^ack (\S+) (\d+)$/.exec(l)
      if (m) acks.push([m[1]!, Number(m[2])])
    }
  })
  child.stderr.on('data', (d) => { err += String(d) })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
  // Killed once the import is under way and codes are being verified.
  const deadline = Date.now() + 60_000
  while (!((await count(sql`type = 'TokenImported'`)) > 1000 && acks.length >= 20)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the load never got going: ${err}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  child.kill('SIGKILL')
  t.equal(await exited, 'SIGKILL', 'killed mid-way')
  // A statement the killed process had sent may still commit: its server sessions end first, then we look.
  await backendsGone()
  const imported = await count(sql`type = 'TokenImported' and stream_id like 'token-CR-%'`)
  t.ok(imported > 0 && imported < ROWS, `the import was cut short (${imported} of ${ROWS} rows in)`)

  const rows = (await sql<{ stream_id: string; stream_version: number }>`select stream_id, stream_version from events`.execute(db)).rows
  const written = new Set(rows.map((r) => `${r.stream_id}@${r.stream_version}`))
  t.same(acks.filter(([stream, version]) => !written.has(`${stream}@${version}`)), [], `all ${acks.length} acknowledged changes are in the log`)
  t.equal(written.size, rows.length, 'none doubled')
  const verified = await count(sql`type = 'OtpVerified'`)
  t.ok(verified >= acks.filter(([s]) => s.startsWith('token-HK-')).length, 'each acknowledged verification is an OtpVerified')
  t.same((await verifyChains(db)).breaks, [], 'every hash chain verifies')
  await assertRebuildEqual(t, db, store, ['tokens', 'streams', 'users', 'audit_index', 'event_type_stats'])

  // The same import again: it completes; the rows already in are reported as such, and nothing else is refused.
  const report = await importTokens(app.commands, parseInventory('entra', crashInventory(ROWS)), metadata(), { format: 'entra' })
  t.equal(report.imported, ROWS - imported, 'the rest imported')
  t.equal(report.rejectedCount, imported, 'the rows already in refused')
  t.same(Object.keys(report.rejectedByReason).length, 1)
  t.match(Object.keys(report.rejectedByReason)[0], /already in the inventory/)
  t.equal(await count(sql`type = 'TokenImported' and stream_id like 'token-CR-%'`), ROWS, 'every row in, once')
})

t.test('tessera projections rebuild killed mid-way: the live read models are untouched, and the next rebuild completes', async (t) => {
  const child = spawn(process.execPath, [BIN, 'projections', 'rebuild'], { cwd: ROOT, env })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { out += String(d) })
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
  // Killed while it replays into its fresh tables (its first projection's line says it is under way).
  const deadline = Date.now() + 60_000
  while (!/rebuilt streams/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the rebuild did not get going: ${out}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  child.kill('SIGKILL')
  t.equal(await exited, 'SIGKILL')
  await backendsGone()
  t.notMatch(out, /rebuilt audit_index/, 'killed before it finished')
  await assertRebuildEqual(t, db, store, ['tokens', 'audit_index'])
  const again = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, 'projections', 'rebuild'], { cwd: ROOT, env })
    let o = ''
    c.stdout.on('data', (d) => { o += String(d) })
    c.stderr.on('data', (d) => { o += String(d) })
    c.once('exit', (code) => resolve({ code, out: o }))
  })
  t.equal(again.code, 0, again.out)
  t.match(again.out, /rebuilt event_type_stats/)
  t.same((await verifyChains(db)).breaks, [])
})
