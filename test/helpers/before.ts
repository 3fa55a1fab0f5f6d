// tap's `before` script: without DATABASE_URL, start one embedded PostgreSQL for the whole run (or join
// the one another run started). Each test file then creates its own database in it.
// Runs that share it register here by the tap runner's pid; the last one out stops it (after.ts).
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { startEmbedded } from '../../src/db/embedded-postgres.js'
import { TEST_DATA_DIR } from './embedded-server.js'

if (!process.env.DATABASE_URL) {
  const embedded = await startEmbedded(TEST_DATA_DIR)
  const runs = path.join(TEST_DATA_DIR, 'runs')
  await fs.mkdir(runs, { recursive: true })
  await fs.writeFile(path.join(runs, String(process.ppid)), '')
  console.log(`# embedded PostgreSQL for the tests on port ${embedded.info.port}${embedded.startedHere ? '' : ' (already running)'}`)
}
