// Where the test run's PostgreSQL is: DATABASE_URL, or the embedded one the `before` script started.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const TEST_DATA_DIR = path.join(fileURLToPath(new URL('../..', import.meta.url)), '.tessera-test')
