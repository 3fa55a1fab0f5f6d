// tap's `after` script: stop the embedded PostgreSQL unless another test run still uses it.
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { readInfo } from '../../src/db/embedded-postgres.js'
import { TEST_DATA_DIR } from './embedded-server.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

if (!process.env.DATABASE_URL) {
  const runs = path.join(TEST_DATA_DIR, 'runs')
  await fs.rm(path.join(runs, String(process.ppid)), { force: true })
  const others = (await fs.readdir(runs).catch(() => [])).filter((pid) => alive(Number(pid)))
  const info = await readInfo(TEST_DATA_DIR)
  if (info && others.length === 0) {
    const { pg_ctl } = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { pg_ctl: string }
    const run = promisify(execFile)
    const asPostgres = process.getuid?.() === 0
      ? { uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) }
      : {}
    await run(pg_ctl, ['stop', '-w', '-m', 'fast', '-D', path.join(TEST_DATA_DIR, 'pg')], asPostgres).catch(() => {})
  }
}
