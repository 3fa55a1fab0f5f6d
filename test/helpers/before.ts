// tap's `before` script: without DATABASE_URL, start one embedded PostgreSQL for the whole run.
// Each test file then creates its own database in it (test/helpers/database.ts).
import { startEmbedded } from '../../src/db/embedded-postgres.js'
import { TEST_DATA_DIR } from './embedded-server.js'

if (!process.env.DATABASE_URL) {
  const embedded = await startEmbedded(TEST_DATA_DIR)
  console.log(`# embedded PostgreSQL for the tests on port ${embedded.info.port}${embedded.startedHere ? '' : ' (already running)'}`)
}
