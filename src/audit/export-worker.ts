// The export thread (see export.ts): runs the exports it is asked for, several at once if need be, and
// sends each one's output back, every full slab moved (not copied), never more than the export's
// credit ahead of what its reader has taken.
import { parentPort } from 'node:worker_threads'
import { exportLines, type ExportRequest, type FromWorker, type ToWorker } from './export.js'

const port = parentPort!

interface Running {
  credits: number
  wake: (() => void) | null
  abort: AbortController
}

const running = new Map<number, Running>()

port.on('message', (m: ToWorker) => {
  if ('start' in m) {
    void run(m.id, m.start)
    return
  }
  const r = running.get(m.id)
  if (!r) return
  if ('credit' in m) r.credits += m.credit
  else r.abort.abort()
  r.wake?.()
  r.wake = null
})

/** A slab that holds lines for this long goes out even if not full (a copy of what it holds), so a slow export trickles. */
const HOLD_MS = 200

async function run(id: number, request: ExportRequest): Promise<void> {
  const r: Running = { credits: request.inFlight, wake: null, abort: new AbortController() }
  running.set(id, r)
  const { signal } = r.abort
  const send = async (message: FromWorker, transfer: ArrayBuffer[]) => {
    while (r.credits === 0 && !signal.aborted) await new Promise<void>((resolve) => (r.wake = resolve))
    signal.throwIfAborted()
    r.credits--
    port.postMessage(message, transfer)
  }
  // Sends go out one after the other, in order, whether the loop or the hold timer makes them.
  let queue: Promise<void> = Promise.resolve()
  const enqueue = (message: FromWorker, transfer: ArrayBuffer[] = []) => (queue = queue.then(() => send(message, transfer)))
  // The slab being filled, and the part of it not sent yet. The slab itself is moved once the lines
  // have gone on to the next slab, so nothing writes into it any more.
  let slab: ArrayBuffer | null = null
  let start = 0
  let end = 0
  let holding: NodeJS.Timeout | null = null
  const sendHeld = () => {
    holding = null
    if (!slab || end === start) return
    const copy = new Uint8Array(slab, start, end - start).slice()
    start = end
    enqueue({ id, buffer: copy.buffer, start: 0, end: copy.length }, [copy.buffer]).catch(() => {})
  }
  try {
    for await (const piece of exportLines(request.settings, request.filter, request.as, request.options, signal)) {
      if (typeof piece === 'string') {
        await enqueue({ id, text: piece })
        continue
      }
      if (piece.buffer !== slab) {
        // The new slab is the current one before the old one is sent: the hold timer may fire while
        // that send waits for credit, and must find nothing of the old slab left to send.
        const [full, from, to] = [slab, start, end]
        slab = piece.buffer as ArrayBuffer
        start = end = piece.byteOffset
        if (full && to > from) await enqueue({ id, buffer: full, start: from, end: to }, [full])
      }
      end = piece.byteOffset + piece.length
      holding ??= setTimeout(sendHeld, HOLD_MS)
    }
    if (holding) clearTimeout(holding)
    holding = null
    if (slab && end > start) await enqueue({ id, buffer: slab, start, end }, [slab])
    await queue
    port.postMessage({ id, done: true } satisfies FromWorker)
  } catch (error) {
    if (signal.aborted) return
    const { message, code } = error as { message?: string; code?: string }
    port.postMessage({ id, error: { message: message ?? String(error), ...(code ? { code } : {}) } } satisfies FromWorker)
  } finally {
    if (holding) clearTimeout(holding)
    running.delete(id)
  }
}
