// The flow browsers' worker thread (see flow-browsers.ts): it loads the TypeScript sources through tsx, as
// src/audit/export-thread.js does, since a worker does not inherit the loader of the thread that started it.
import { register } from 'tsx/esm/api'

register()
await import('./flow-browsers-worker.ts')
