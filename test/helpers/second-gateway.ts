// A second gateway process for tests of several processes: the real server entry point (src/server.ts) on
// the same database, started and waited for until ready, stopped at the test's end.
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { TEST_DATA_DIR } from './embedded-server.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export async function startSecondGateway(t: Test, env: Record<string, string>, port: number): Promise<void> {
  const dataDir = await fs.mkdtemp(path.join(TEST_DATA_DIR, 'second-'))
  t.teardown(() => fs.rm(dataDir, { recursive: true, force: true }))
  const full: Record<string, string> = { ...process.env as Record<string, string>, ...env, PORT: String(port), TESSERA_DATA_DIR: dataDir, LOG_LEVEL: 'warn' }
  delete full.NODE_OPTIONS
  const second = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env: full, stdio: ['ignore', 'inherit', 'inherit'] })
  t.teardown(() => new Promise<void>((resolve) => { second.once('exit', () => resolve()); second.kill('SIGTERM') }))
  for (let i = 0; ; i++) {
    if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)) return
    if (i > 300) throw new Error('the second gateway did not start')
    await new Promise((r) => setTimeout(r, 100))
  }
}
