// Counts the statements this process sends to PostgreSQL (every pg Client's query(), so the gateway's pool,
// the bench's pool and begin/commit alike), to report round trips per operation. Bench-only instrumentation:
// it wraps pg.Client.prototype.query while counting and puts it back on stop().
import pg from 'pg'

type Query = (...args: unknown[]) => unknown

export function countStatements(): { stop(): number } {
  const proto = pg.Client.prototype as unknown as { query: Query }
  const original = proto.query
  let count = 0
  proto.query = function counted(this: unknown, ...args: unknown[]) {
    count++
    return original.apply(this, args)
  }
  let stopped = false
  return {
    stop() {
      if (!stopped) {
        stopped = true
        proto.query = original
      }
      return count
    },
  }
}
