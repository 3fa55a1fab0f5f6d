// CPU time of the calling thread, to tell the gateway's thread from the simulated browsers' worker thread in a
// process's CPU: Node 20 has no per-thread cpuUsage (process.threadCpuUsage came in a later major), so it is
// read from Linux's /proc/thread-self/stat. Null elsewhere.
import { readFileSync } from 'node:fs'
import { TICKS_PER_SECOND } from './server-cpu.js'

/** CPU seconds (user + system) the calling thread has used so far, in USER_HZ ticks (10 ms); null when unknown. */
export function threadCpuSeconds(): number | null {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8')
    // Fields after the command name (which may contain spaces, so split after its closing parenthesis).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND // utime, stime
  } catch {
    return null
  }
}
