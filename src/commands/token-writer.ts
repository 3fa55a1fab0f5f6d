// The token write path in one statement (one round trip, one implicit transaction):
//   append the events (the events trigger checks the expected version and chains the hashes),
//   update the `tokens` row from the state the domain folded, guarded by the same version,
//   upsert the `streams` row.
// It writes exactly what the inline projections `tokens` and `streams` write for these events
// (a rebuild from the log gives the same rows; tested), but from the state the command already loaded.
// Time-valued fields take the database's now(), the same instant the events record.
import { sql, type RawBuilder } from 'kysely'
import { tokenStream, type TokenEvent } from '../domain/token/events.js'
import { evolve, type TokenState } from '../domain/token/state.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import { checkEvents, checkMetadata } from '../event-store/validate.js'
import type { EventMetadata } from '../event-store/types.js'
import { rowFromState } from '../read-models/tokens.js'
import type { CommandContext } from './context.js'

/** Stands for "the time the events are recorded" while folding; written as now(). */
const RECORDED_AT = new Date(8.64e15)

function value(v: unknown): RawBuilder<unknown> {
  return v instanceof Date && v.getTime() === RECORDED_AT.getTime() ? sql`now()` : sql`${v}`
}

export async function appendTokenEvents(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  prior: TokenState,
  events: readonly TokenEvent[],
  meta: EventMetadata,
): Promise<TokenState> {
  checkMetadata(meta)
  const metadataJson = JSON.stringify(meta)
  const datas = checkEvents(events, metadataJson)
  const streamId = tokenStream(prior.serial)
  let state = prior
  for (const e of events) state = evolve(state, e, RECORDED_AT)
  const { serial: _, ...columns } = rowFromState(state)
  const rows = events.map((e, i) =>
    sql`(${streamId}, ${prior.version + 1 + i}::integer, ${e.type}, ${datas[i]}::jsonb, ${metadataJson}::jsonb)`)
  const set = Object.entries(columns).map(([column, v]) => sql`${sql.ref(column)} = ${value(v)}`)
  const last = events[events.length - 1]!
  let recordedAt: Date
  try {
    const result = await sql<{ at: Date; ok: number }>`
      with appended as (
        insert into events (stream_id, stream_version, type, data, metadata) values ${sql.join(rows)} returning position
      ), token as (
        update tokens set ${sql.join(set)} where serial = ${prior.serial} and version = ${prior.version} returning serial
      )${events.some((e) => e.type === 'TokenSecretDestroyed')
        ? sql`, shredded as (delete from token_secrets where serial = ${prior.serial})`
        : sql``}, stream as (
        insert into streams (stream_id, category, version, last_type, created_at, updated_at)
        values (${streamId}, 'token', ${state.version}, ${last.type}, now(), now())
        on conflict (stream_id) do update set version = excluded.version, last_type = excluded.last_type, updated_at = excluded.updated_at
        where streams.version < excluded.version
      )
      -- The read model row must be at the version the events followed; if not, fail the whole statement.
      select now() as at, 1 / (select count(*) from token)::int as ok`.execute(ctx.db)
    recordedAt = result.rows[0]!.at
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'TS001' || code === '23505' || code === '22012') throw new WrongExpectedVersion(streamId, prior.version, null)
    throw error
  }
  ctx.store.committed()
  const real = (d: Date | null) => (d && d.getTime() === RECORDED_AT.getTime() ? recordedAt : d)
  return { ...state, activatedAt: real(state.activatedAt), lastUsedAt: real(state.lastUsedAt), importedAt: real(state.importedAt) }
}
