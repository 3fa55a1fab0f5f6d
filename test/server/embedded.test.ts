// The README's first command: with no DATABASE_URL the gateway runs on the embedded PostgreSQL,
// serves /readyz, shares that instance with the CLI, and stops it on shutdown.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, promises as fs, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { tessera } from '../helpers/cli.js'
import { TEST_DATA_DIR } from '../helpers/embedded-server.js'
import { freePort } from '../helpers/net.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
await fs.mkdir(TEST_DATA_DIR, { recursive: true })
const dataDir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'smoke-'))
t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))


// No DATABASE_URL, as a newcomer runs it (an empty value means unset).
const env = { ...process.env, TESSERA_DATA_DIR: dataDir, LOG_LEVEL: 'info', DATABASE_URL: '' } as Record<string, string>
delete env.NODE_OPTIONS // tap's loaders are not part of a user's start

async function start(port: number): Promise<{ child: ChildProcess; logs: string[] }> {
  const logs: string[] = []
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env: { ...env, PORT: String(port) } })
  child.stdout!.on('data', (d) => logs.push(String(d)))
  child.stderr!.on('data', (d) => logs.push(String(d)))
  const until = Date.now() + 90_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited: ${logs.join('')}`)
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false)
    if (ok) return { child, logs }
    if (Date.now() > until) throw new Error(`no /readyz 200 within 90 s: ${logs.join('')}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

function postmasterPid(): number | null {
  const file = path.join(dataDir, 'pg', 'postmaster.pid')
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : null
}


function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]
    return state !== undefined && state !== 'Z'
  } catch {
    return false
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100))
  return !alive(pid)
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return exited
}

t.test('starts on the embedded PostgreSQL, serves /readyz, shares it with the CLI, stops it on SIGTERM', async (t) => {
  const port = await freePort()
  const { child, logs } = await start(port)
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
  t.match(await ready.json(), { status: 'ready', checks: { database: 'ok', migrations: 'ok' } })
  const pid = postmasterPid()
  t.ok(pid && alive(pid), 'the embedded PostgreSQL runs')

  const cli = await tessera(['audit', 'verify'], env)
  t.equal(cli.code, 0, cli.stderr)
  t.match(cli.stdout, /ok: 0 streams/)
  t.ok(alive(pid!), "the CLI used the gateway's instance and left it running")
  const info = JSON.parse(await fs.readFile(path.join(dataDir, 'embedded.json'), 'utf8'))
  t.equal((await fs.stat(path.join(dataDir, 'embedded.json'))).mode & 0o777, 0o600, 'the embedded password file is private')

  const code = await stop(child)
  t.equal(code, 0, 'a clean exit', { logs: logs.join('').slice(-3000) })
  t.ok(await gone(pid!), 'the embedded PostgreSQL stopped with it')
  const text = logs.join('')
  t.match(text, /"msg":"stopping the embedded PostgreSQL"/)
  t.match(text, /generated a master key for seeds in .*keyring.json/, 'the log says a master key was generated')
  t.equal((await fs.stat(path.join(dataDir, 'keyring.json'))).mode & 0o777, 0o600, 'the keyring is private')
  t.notOk(text.includes(info.password), 'the database password is in no log line')
})

t.test('a second start keeps the data directory', async (t) => {
  const port = await freePort()
  const { child, logs } = await start(port)
  t.notMatch(logs.join(''), /creating the embedded PostgreSQL cluster/, 'no new cluster')
  t.notMatch(logs.join(''), /migration applied/, 'migrations were already current')
  t.notMatch(logs.join(''), /generated a master key/, 'the same master key is used again')
  t.equal(await stop(child), 0)
})

t.test('npm start: after a crash the next start adopts the PostgreSQL left running, and npm ends only once both stopped', async (t) => {
  const npm = async (port: number) => {
    const logs: string[] = []
    const child = spawn('npm', ['start'], { cwd: ROOT, env: { ...env, PORT: String(port) } })
    child.stdout!.on('data', (d) => logs.push(String(d)))
    child.stderr!.on('data', (d) => logs.push(String(d)))
    const until = Date.now() + 90_000
    while (!(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false))) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`npm start did not get ready: ${logs.join('')}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    const gateway = Number(/"pid":(\d+)/.exec(logs.join(''))![1])
    return { child, logs, gateway }
  }
  // A crash: the gateway is killed outright; its PostgreSQL is left running.
  const first = await npm(await freePort())
  const pg = postmasterPid()
  process.kill(first.gateway, 'SIGKILL')
  await new Promise((resolve) => first.child.once('exit', resolve))
  t.ok(pg && alive(pg), 'the embedded PostgreSQL outlived the crash')

  const second = await npm(await freePort())
  t.equal(postmasterPid(), pg, 'the same PostgreSQL, adopted')
  t.match(second.logs.join(''), new RegExp(`adopted the embedded PostgreSQL left running by gateway process ${first.gateway}, which is gone`))
  // A service manager's SIGTERM goes to npm alone: npm hands it to the gateway and waits for it.
  const exited = new Promise<number | null>((resolve) => second.child.once('exit', (code) => resolve(code)))
  second.child.kill('SIGTERM')
  t.equal(await exited, 0, 'npm exits cleanly', { logs: second.logs.join('').slice(-2000) })
  t.notOk(alive(second.gateway), 'the gateway had stopped when npm exited')
  t.notOk(alive(pg!), 'and so had the PostgreSQL it adopted')
  t.match(second.logs.join(''), /"msg":"embedded PostgreSQL stopped"/)
})
