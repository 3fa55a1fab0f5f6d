// CPU time of the PostgreSQL backends serving the bench database, when the server runs on this machine
// (read from /proc/<pid>/stat of the pids pg_stat_activity lists for the database). Only backends: the WAL
// writer, checkpointer and other databases' work are not in it. Null when the server is elsewhere or /proc
// cannot be read.
import { readFileSync } from 'node:fs'
import { sql } from 'kysely'
import type { Db } from '../../src/read-models/database.js'

/** Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat; 100 on every common build. */
export const TICKS_PER_SECOND = 100

export type BackendCpu = Map<number, number>

function ticksOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces, so split after its closing parenthesis).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14 and 15 of the line)
  } catch {
    return null
  }
}

/** CPU ticks so far of each backend connected to the database; null when they cannot be read here. */
export async function backendCpu(db: Db): Promise<BackendCpu | null> {
  const rows = await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database()`.execute(db)
  const out: BackendCpu = new Map()
  for (const { pid } of rows.rows) {
    const ticks = ticksOf(pid)
    if (ticks !== null) out.set(pid, ticks)
  }
  return out.size > 0 ? out : null
}

/** Backend CPU seconds between two snapshots (backends that connected in between count from zero). */
export function backendCpuSeconds(start: BackendCpu | null, end: BackendCpu | null): number | null {
  if (!start || !end) return null
  let ticks = 0
  for (const [pid, t] of end) ticks += t - (start.get(pid) ?? 0)
  return ticks / TICKS_PER_SECOND
}
