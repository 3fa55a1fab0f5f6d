// Walks every stream's hash chain in the database and reports, per stream, the first event whose
// stored bytes no longer match the chain, or where an event is missing.
import { sql } from 'kysely'
import type { Executor } from '../read-models/database.js'

export interface ChainBreak {
  streamId: string
  version: number
  problem: 'changed' | 'missing' | 'truncated'
  message: string
}

export interface VerifyReport {
  streams: number
  events: number
  breaks: ChainBreak[]
}

export async function verifyChains(db: Executor, options: { streamId?: string } = {}): Promise<VerifyReport> {
  const where = options.streamId ? sql`where stream_id = ${options.streamId}` : sql``
  const counts = await sql<{ streams: string; events: string }>`
    select count(distinct stream_id) as streams, count(*) as events from events ${where}`.execute(db)
  const broken = await sql<{ stream_id: string; stream_version: number; problem: 'changed' | 'missing' }>`
    select distinct on (stream_id) stream_id, stream_version, problem from (
      select stream_id, stream_version,
        case
          when stream_version <> coalesce(lag(stream_version) over w, 0) + 1 then 'missing'
          when hash is distinct from sha256(coalesce(lag(hash) over w, ''::bytea) ||
            tessera_event_bytes(stream_id, stream_version, type, data, metadata, recorded_at)) then 'changed'
        end as problem
      from events ${where}
      window w as (partition by stream_id order by stream_version)
    ) checked
    where problem is not null
    order by stream_id, stream_version`.execute(db)
  // The chain cannot show that a stream's last events were removed; the streams read model can.
  const truncated = await sql<{ stream_id: string; version: number }>`
    select s.stream_id, s.version from streams s
    left join lateral (select max(stream_version) as v from events e where e.stream_id = s.stream_id) e on true
    where coalesce(e.v, 0) < s.version ${options.streamId ? sql`and s.stream_id = ${options.streamId}` : sql``}`.execute(db)

  const breaks: ChainBreak[] = broken.rows.map((r) => ({
    streamId: r.stream_id,
    version: r.stream_version,
    problem: r.problem,
    message: r.problem === 'changed'
      ? `stream ${r.stream_id} version ${r.stream_version}: the stored event does not match its hash (changed after it was written)`
      : `stream ${r.stream_id} version ${r.stream_version}: the event before it is missing`,
  }))
  for (const r of truncated.rows) {
    if (breaks.some((b) => b.streamId === r.stream_id)) continue
    breaks.push({
      streamId: r.stream_id,
      version: r.version,
      problem: 'truncated',
      message: `stream ${r.stream_id} version ${r.version}: the stream's last events are missing`,
    })
  }
  breaks.sort((a, b) => (a.streamId < b.streamId ? -1 : a.streamId > b.streamId ? 1 : 0))
  return { streams: Number(counts.rows[0]!.streams), events: Number(counts.rows[0]!.events), breaks }
}
