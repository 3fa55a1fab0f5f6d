// tap's `after` script: stop the embedded PostgreSQL that `before` started.
import { execFile } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { readInfo } from '../../src/db/embedded-postgres.js'
import { TEST_DATA_DIR } from './embedded-server.js'

if (!process.env.DATABASE_URL) {
  const info = await readInfo(TEST_DATA_DIR)
  if (info) {
    const { pg_ctl } = (await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)) as { pg_ctl: string }
    const run = promisify(execFile)
    const asPostgres = process.getuid?.() === 0
      ? { uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) }
      : {}
    await run(pg_ctl, ['stop', '-w', '-m', 'fast', '-D', path.join(TEST_DATA_DIR, 'pg')], asPostgres).catch(() => {})
  }
}
