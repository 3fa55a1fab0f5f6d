// A real FreeRADIUS 3 on loopback for one test file: a minimal radiusd.conf written into a temporary
// directory (PAP against a users file, one client for 127.0.0.1 that must sign its requests), run in the
// foreground and stopped at teardown. `.ci/run` installs it (Debian's `freeradius` package). The bench's
// `remote` scenario starts the same server through launchFreeRadius, with a teardown list of its own.
import { spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'

export interface FreeRadiusOptions {
  /** User name to password (a fixed code). */
  users: Record<string, string>
  secret: string
  /**
   * Add a Message-Authenticator to Access-Accept and Access-Reject (default true). FreeRADIUS 3.2.1 does
   * not on its own; false shows how an unpatched server answers.
   */
  replyMessageAuthenticator?: boolean
  /** Seconds FreeRADIUS waits before an Access-Reject (its reject_delay; default 0 here, 1 in a stock install). */
  rejectDelay?: number
  /** Log a line for each request's outcome (default true). The bench turns it off: its process would read them. */
  authLog?: boolean
}

export interface FreeRadius {
  host: '127.0.0.1'
  port: number
  secret: string
  /** The radiusd process, for its CPU time. */
  pid: number
  /** What the server logged so far (its Auth: lines say why it refused or dropped a request). */
  log(): string
  stop(): Promise<void>
}

/** Takes what stops the server and removes its directory: tap's t.teardown, or a list the caller runs. */
export type Teardown = (fn: () => Promise<void>) => void

export async function startFreeRadius(t: Test, options: FreeRadiusOptions): Promise<FreeRadius> {
  return launchFreeRadius((fn) => t.teardown(fn), options)
}

export async function launchFreeRadius(teardown: Teardown, options: FreeRadiusOptions): Promise<FreeRadius> {
  const binary = await findFreeRadius()
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-freeradius-'))
  let stop = async () => {}
  teardown(async () => { await stop(); await rm(dir, { recursive: true, force: true }) })
  await writeFile(path.join(dir, 'users'), usersFile(options.users))
  // Another process may take the port between our check and FreeRADIUS binding it: then try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort()
    await writeFile(path.join(dir, 'radiusd.conf'), radiusdConf(dir, port, options))
    const server = await run(binary, dir)
    if (server.ready) {
      stop = once(() => server.stop())
      await statusServer(port, options.secret).catch(async (error: Error) => {
        await stop()
        throw new Error(`FreeRADIUS started but does not answer on 127.0.0.1:${port}: ${error.message}\n${server.log()}`)
      })
      return { host: '127.0.0.1', port, secret: options.secret, pid: server.pid, log: server.log, stop }
    }
    if (attempt === 3 || !/Failed binding|Address already in use/.test(server.log())) {
      throw new Error(`FreeRADIUS did not start:\n${server.log()}`)
    }
  }
}

async function findFreeRadius(): Promise<string> {
  // /usr/sbin is often not on a non-root PATH.
  for (const candidate of ['/usr/sbin/freeradius', '/usr/sbin/radiusd']) {
    if (await access(candidate).then(() => true, () => false)) return candidate
  }
  return 'freeradius'
}

/** A config string in FreeRADIUS double quotes. */
function quoted(value: string): string {
  if (/[\0\r\n]/.test(value)) throw new Error('FreeRADIUS test config: no NUL or line break in names, passwords or secrets')
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

function usersFile(users: Record<string, string>): string {
  return Object.entries(users).map(([name, password]) => `${quoted(name)} Cleartext-Password := ${quoted(password)}\n`).join('')
}

// Only what PAP needs. The dictionaries come from the package's dictdir (/usr/share/freeradius), which
// radiusd reads before looking for an optional `dictionary` in -d. No user/group: it runs as whoever
// starts it. reject_delay 0 so a refusal does not cost the tests a second.
function radiusdConf(dir: string, port: number, options: FreeRadiusOptions): string {
  const signReply = (options.replyMessageAuthenticator ?? true)
    ? 'update reply {\n        Message-Authenticator := 0x00\n      }'
    : ''
  return `# Written by test/helpers/freeradius.ts for one test file.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = ${dir}
sbindir = /usr/sbin
logdir = ${dir}
raddbdir = ${dir}
radacctdir = ${dir}
confdir = ${dir}
run_dir = ${dir}
db_dir = ${dir}
libdir = /usr/lib/freeradius
pidfile = ${dir}/radiusd.pid
name = freeradius
max_request_time = 5
cleanup_delay = 0
hostname_lookups = no
proxy_requests = no

log {
  destination = stdout
  auth = ${(options.authLog ?? true) ? 'yes' : 'no'}
}

security {
  allow_core_dumps = no
  reject_delay = ${options.rejectDelay ?? 0}
  status_server = yes
}

client loopback {
  ipaddr = 127.0.0.1
  secret = ${quoted(options.secret)}
  # Drop any request without a valid Message-Authenticator (Blast-RADIUS, CVE-2024-3596).
  require_message_authenticator = yes
}

modules {
  pap {
  }
  files {
    filename = ${dir}/users
  }
}

server default {
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = ${port}
  }
  authorize {
    files
    pap
  }
  authenticate {
    Auth-Type PAP {
      pap
    }
  }
  # FreeRADIUS 3.2.1 signs a reply only when it carries this attribute (later releases add it themselves).
  post-auth {
    ${signReply}
    Post-Auth-Type REJECT {
      ${signReply}
    }
  }
}
`
}

interface Running {
  ready: boolean
  pid: number
  log(): string
  stop(): Promise<void>
}

/** Runs radiusd in the foreground until it says it is ready, or exits. */
function run(binary: string, dir: string): Promise<Running> {
  return new Promise((resolve, reject) => {
    let output = ''
    let exited = false
    const child: ChildProcess = spawn(binary, ['-f', '-l', 'stdout', '-d', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
    const log = () => output
    const stop = () => new Promise<void>((done) => {
      if (exited) return done()
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000)
      child.once('exit', () => { clearTimeout(kill); done() })
      child.kill('SIGTERM')
    })
    const read = (chunk: Buffer) => {
      output += chunk.toString('utf8')
      if (output.includes('Ready to process requests')) resolve({ ready: true, pid: child.pid!, log, stop })
    }
    child.stdout!.on('data', read)
    child.stderr!.on('data', read)
    child.on('error', (error: NodeJS.ErrnoException) => {
      exited = true
      reject(error.code === 'ENOENT'
        ? new Error('FreeRADIUS is needed for the RADIUS tests: apt-get install freeradius')
        : error)
    })
    child.on('exit', (code, signal) => {
      exited = true
      output += `[radiusd exited: ${signal ?? `code ${code}`}]\n`
      resolve({ ready: false, pid: child.pid ?? 0, log, stop })
    })
  })
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4')
    socket.on('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address()
      socket.close(() => resolve(port))
    })
  })
}

/** A Status-Server (RFC 5997) until the server answers it: proof it reads requests on `port`. */
function statusServer(port: number, secret: string): Promise<void> {
  const identifier = crypto.randomInt(256)
  const packet = Buffer.alloc(38)
  packet.writeUInt8(12, 0)
  packet.writeUInt8(identifier, 1)
  packet.writeUInt16BE(38, 2)
  crypto.randomBytes(16).copy(packet, 4)
  packet.writeUInt8(80, 20)
  packet.writeUInt8(18, 21)
  crypto.createHmac('md5', secret).update(packet).digest().copy(packet, 22)
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4')
    const end = (error?: Error) => { clearInterval(again); clearTimeout(give); socket.close(); if (error) reject(error); else resolve() }
    socket.on('message', (answer) => { if (answer[1] === identifier) end() })
    socket.on('error', () => {}) // an ICMP before the port is open: the next send tries again
    const send = () => socket.send(packet, port, '127.0.0.1')
    const again = setInterval(send, 200)
    const give = setTimeout(() => end(new Error('no answer to Status-Server within 5 s')), 5000)
    send()
  })
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined
  return () => (done ??= fn())
}
