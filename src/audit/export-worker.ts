// The export thread (see export.ts): runs the exports it is asked for, several at once if need be. Each
// export writes into its ring of slabs shared with the caller's thread and says which parts are ready;
// it takes a slab again only once the caller has given it back (written out), so it never runs more
// than a ring ahead of the destination.
import { parentPort } from 'node:worker_threads'
import { SLAB_BYTES, writeLines, type ExportRequest, type FromWorker, type LineOutput, type Space, type ToWorker } from './export.js'

const port = parentPort!

/** A part of a slab that holds lines for this long goes out even if the slab is not full, so a slow export trickles. */
const HOLD_MS = 200

/** An export's output: the ring's slabs, filled one after the other, and now and then a buffer of its own. */
class RingOutput implements LineOutput {
  private readonly buffer: Buffer
  private readonly view: DataView
  private readonly free: number[]
  /** The slab being filled (-1: none), where its free part begins, and how far it has been sent. */
  private slab = -1
  private used = 0
  private sent = 0
  /** A buffer of its own, for output longer than a slab: in use by the writer, or sent and not yet written. */
  private own: Buffer | null = null
  private ownOut = false
  private wake: (() => void) | null = null
  private holding: NodeJS.Timeout | null = null

  constructor(private readonly id: number, shared: SharedArrayBuffer, slabs: number, private readonly signal: AbortSignal) {
    this.buffer = Buffer.from(shared)
    this.view = new DataView(shared)
    this.free = Array.from({ length: slabs }, (_, i) => i)
    signal.addEventListener('abort', () => this.wakeUp(), { once: true })
  }

  /** Slab `slab` written out by the caller (-1: the buffer of its own). */
  release(slab: number): void {
    if (slab < 0) this.ownOut = false
    else this.free.push(slab)
    this.wakeUp()
  }

  async room(bytes: number): Promise<Space> {
    const slabEnd = (this.slab + 1) * SLAB_BYTES
    if (this.slab >= 0 && slabEnd - this.used >= bytes) return { out: this.buffer, view: this.view, start: this.used, end: slabEnd }
    if (bytes > SLAB_BYTES) {
      // What is in the slab goes first; the slab itself stays current for what comes after.
      this.flush()
      await this.until(() => !this.ownOut)
      // Not from Node's shared pool (whose ArrayBuffer cannot move), and moved to the caller once written.
      const own = Buffer.allocUnsafeSlow(bytes)
      this.own = own
      return { out: own, view: new DataView(own.buffer), start: 0, end: bytes }
    }
    this.close()
    await this.until(() => this.free.length > 0)
    this.slab = this.free.shift()!
    this.used = this.sent = this.slab * SLAB_BYTES
    return { out: this.buffer, view: this.view, start: this.used, end: this.used + SLAB_BYTES }
  }

  commit(end: number): void {
    if (this.own) {
      const own = this.own
      this.own = null
      this.ownOut = true
      this.post({ id: this.id, buffer: own.buffer as ArrayBuffer, start: 0, end }, [own.buffer as ArrayBuffer])
      return
    }
    this.used = end
    this.holding ??= setTimeout(() => {
      this.holding = null
      this.flush()
    }, HOLD_MS)
  }

  /** The rest of the current slab goes out, and the slab with it. */
  close(): void {
    if (this.holding) clearTimeout(this.holding)
    this.holding = null
    if (this.slab < 0) return
    this.post({ id: this.id, slab: this.slab, start: this.sent, end: this.used, last: true })
    this.slab = -1
  }

  /** What the current slab holds and has not sent goes out; the slab stays current. */
  private flush(): void {
    if (this.slab < 0 || this.used === this.sent) return
    this.post({ id: this.id, slab: this.slab, start: this.sent, end: this.used, last: false })
    this.sent = this.used
  }

  private post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
    if (!this.signal.aborted) port.postMessage(message, transfer)
  }

  private async until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      this.signal.throwIfAborted()
      await new Promise<void>((resolve) => (this.wake = resolve))
    }
    this.signal.throwIfAborted()
  }

  private wakeUp(): void {
    const wake = this.wake
    this.wake = null
    wake?.()
  }
}

const running = new Map<number, { output: RingOutput; abort: AbortController }>()

port.on('message', (m: ToWorker) => {
  if ('start' in m) {
    void run(m.id, m.start)
    return
  }
  const r = running.get(m.id)
  if (!r) return
  if ('free' in m) r.output.release(m.free)
  else r.abort.abort()
})

async function run(id: number, request: ExportRequest): Promise<void> {
  const abort = new AbortController()
  const { signal } = abort
  const output = new RingOutput(id, request.shared, request.slabs, signal)
  running.set(id, { output, abort })
  try {
    await writeLines(request.settings, request.filter, request.as, request.options, signal, output)
    output.close()
    port.postMessage({ id, done: true } satisfies FromWorker)
  } catch (error) {
    if (signal.aborted) return
    const { message, code } = error as { message?: string; code?: string }
    port.postMessage({ id, error: { message: message ?? String(error), ...(code ? { code } : {}) } } satisfies FromWorker)
  } finally {
    output.close()
    running.delete(id)
  }
}
