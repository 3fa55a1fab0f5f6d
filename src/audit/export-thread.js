// The audit export's worker thread (see export.ts): it loads the TypeScript sources through tsx, as
// bin/tessera.js does, since a worker does not inherit the loader of the thread that started it.
import { register } from 'tsx/esm/api'

register()
await import('./export-worker.ts')
