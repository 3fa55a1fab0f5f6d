// The flow browsers on a worker thread (started by workerBrowsers in flow-browsers.ts): the plan comes as the
// worker's data; each message asks for one step (setUp, loops, close) and is answered once it is done.
import { parentPort, workerData } from 'node:worker_threads'
import { threadBrowsers, type FlowPlan, type FromBrowsers, type ToBrowsers } from './flow-browsers.js'

const port = parentPort!
const browsers = threadBrowsers(workerData as FlowPlan)

port.on('message', (m: ToBrowsers) => {
  const step = m.do === 'loops' ? browsers.loops(m.seconds) : m.do === 'setUp' ? browsers.setUp() : browsers.close()
  step.then(
    (result) => {
      const answer: FromBrowsers = { id: m.id, done: true, ...(result ? { result } : {}) }
      port.postMessage(answer, result ? [result.latencies.buffer as ArrayBuffer] : [])
    },
    (error: unknown) => port.postMessage({ id: m.id, failed: (error as Error).stack ?? String(error) } satisfies FromBrowsers),
  )
})
