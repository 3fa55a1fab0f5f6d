// The token write path: events, the `tokens` row (guarded by the version the events follow) and the
// `streams` row in ONE statement, one round trip and one implicit transaction.
// Group commit (event-store/group-commit.ts): writes to different tokens made in the same tick go out
// as one statement; a group with a row not at its expected version fails whole and each is tried alone.
// It writes exactly what the inline projections `tokens` and `streams` write for these events (a rebuild
// from the log gives the same rows; tested). Time-valued fields take the database's now(), the instant
// the events record.
import { sql } from 'kysely'
import { executePrepared } from '../db/prepared.js'
import { tokenStream, type TokenEvent } from '../domain/token/events.js'
import { evolve, type TokenState } from '../domain/token/state.js'
import { WrongExpectedVersion } from '../event-store/errors.js'
import { GroupCommit } from '../event-store/group-commit.js'
import { checkEvents, checkMetadata } from '../event-store/validate.js'
import type { EventMetadata } from '../event-store/types.js'
import type { Db } from '../read-models/database.js'
import { rowFromState, type TokensTable } from '../read-models/tokens.js'
import type { CommandContext } from './context.js'
import { timedAppend } from '../metrics.js'

/** Stands for "the time the events are recorded" while folding; written as now(). */
const RECORDED_AT = new Date(8.64e15)

/** The tokens columns and their types, for a VALUES list PostgreSQL can type. */
const COLUMNS: readonly [keyof TokensTable, string][] = [
  ['status', 'text'], ['kind', 'text'], ['destination', 'text'], ['remote_service', 'text'], ['remote_credential', 'text'],
  ['algorithm', 'text'], ['digits', 'smallint'], ['period', 'smallint'],
  ['counter', 'bigint'], ['manufacturer', 'text'], ['model', 'text'], ['user_id', 'text'], ['name', 'text'],
  ['last_step', 'bigint'], ['drift', 'integer'], ['activation_failures', 'integer'], ['claim_failures', 'jsonb'], ['held_for', 'text'], ['failures', 'integer'],
  ['locked_until', 'timestamptz'], ['disabled', 'boolean'], ['lock_count', 'integer'], ['last_used_at', 'timestamptz'], ['seed_fingerprint', 'text'],
  ['activated_at', 'timestamptz'], ['imported_at', 'timestamptz'], ['version', 'integer'],
]

interface Write {
  prior: TokenState
  after: TokenState
  events: readonly TokenEvent[]
  datas: string[]
  metadataJson: string
}

// The group goes to the database as column arrays (unnest): a handful of parameters whatever its size,
// where a VALUES list would need one typed parameter per value.
async function writeGroup(db: Db, writes: readonly Write[]): Promise<Date> {
  const events = { stream: [] as string[], version: [] as number[], type: [] as string[], data: [] as string[], metadata: [] as string[] }
  const serials: string[] = []
  const expected: number[] = []
  const columns = new Map<string, unknown[]>(COLUMNS.map(([c]) => [c, []]))
  const atNow = new Map<string, boolean[]>(COLUMNS.filter(([, t]) => t === 'timestamptz').map(([c]) => [c, []]))
  const streams = { stream: [] as string[], version: [] as number[], type: [] as string[] }
  const shredded: string[] = []
  for (const w of writes) {
    const streamId = tokenStream(w.prior.serial)
    w.events.forEach((e, i) => {
      events.stream.push(streamId)
      events.version.push(w.prior.version + 1 + i)
      events.type.push(e.type)
      events.data.push(w.datas[i]!)
      events.metadata.push(w.metadataJson)
    })
    const row = rowFromState(w.after)
    serials.push(w.prior.serial)
    expected.push(w.prior.version)
    for (const [c] of COLUMNS) {
      const v = row[c]
      const now = v instanceof Date && v.getTime() === RECORDED_AT.getTime()
      columns.get(c)!.push(now ? null : v)
      atNow.get(c)?.push(now)
    }
    streams.stream.push(streamId)
    streams.version.push(w.after.version)
    streams.type.push(w.events[w.events.length - 1]!.type)
    if (w.events.some((e) => e.type === 'TokenSecretDestroyed')) shredded.push(w.prior.serial)
  }
  const arrays = COLUMNS.flatMap(([c, type]) => [
    sql`${columns.get(c)}::${sql.raw(type)}[]`,
    ...(atNow.has(c) ? [sql`${atNow.get(c)}::boolean[]`] : []),
  ])
  const names = COLUMNS.flatMap(([c]) => [sql.ref(c), ...(atNow.has(c) ? [sql.ref(`${c}_now`)] : [])])
  const set = COLUMNS.map(([c]) => atNow.has(c)
    ? sql`${sql.ref(c)} = case when v.${sql.ref(`${c}_now`)} then now() else v.${sql.ref(c)} end`
    : sql`${sql.ref(c)} = v.${sql.ref(c)}`)
  try {
    // A prepared statement: its text depends only on whether a seed is destroyed, not on the group's size.
    const result = await executePrepared(db, sql<{ at: Date }>`
      with appended as (
        insert into events (stream_id, stream_version, type, data, metadata)
        select u.stream, u.version, u.type, u.data, u.metadata
        from unnest(${events.stream}::text[], ${events.version}::integer[], ${events.type}::text[], ${events.data}::jsonb[], ${events.metadata}::jsonb[])
          with ordinality as u(stream, version, type, data, metadata, n)
        order by u.n
        returning position
      ), token as (
        update tokens t set ${sql.join(set)}
        from unnest(${serials}::text[], ${expected}::integer[], ${sql.join(arrays)}) as v(serial, expected, ${sql.join(names)})
        where t.serial = v.serial and t.version = v.expected
        returning t.serial
      )${shredded.length > 0 ? sql`, shredded as (delete from token_secrets where serial = any(${shredded}::text[]))` : sql``}
      , stream as (
        insert into streams (stream_id, category, version, last_type, created_at, updated_at)
        select s.stream, 'token', s.version, s.type, now(), now()
        from unnest(${streams.stream}::text[], ${streams.version}::integer[], ${streams.type}::text[]) as s(stream, version, type)
        on conflict (stream_id) do update set version = excluded.version, last_type = excluded.last_type, updated_at = excluded.updated_at
        where streams.version < excluded.version
      )
      -- Every tokens row must be at the version its events followed; if one is not, fail the whole statement.
      select now() as at, 1 / ((select count(*) from token) = ${writes.length})::int as ok`)
    return result.rows[0]!.at
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'TS001' || code === '23505' || code === '22012') {
      throw new WrongExpectedVersion(tokenStream(writes[0]!.prior.serial), writes[0]!.prior.version, null)
    }
    throw error
  }
}

/** One group-commit queue per database, so concurrent commands share statements. */
type TokenWriter = GroupCommit<Write, Date>

const writers = new WeakMap<object, TokenWriter>()

export async function appendTokenEvents(
  ctx: Pick<CommandContext, 'db' | 'store'>,
  prior: TokenState,
  events: readonly TokenEvent[],
  meta: EventMetadata,
): Promise<TokenState> {
  checkMetadata(meta)
  const metadataJson = JSON.stringify(meta)
  const datas = checkEvents(events, metadataJson)
  let after = prior
  for (const e of events) after = evolve(after, e, RECORDED_AT)
  let writer = writers.get(ctx.db)
  if (!writer) {
    const db = ctx.db
    const store = ctx.store
    writer = new GroupCommit<Write, Date>((w) => w.prior.serial, async (group) => {
      const at = await writeGroup(db, group)
      return group.map(() => at)
    }, () => store.committed())
    writers.set(ctx.db, writer)
  }
  const recordedAt = await timedAppend('token', () => writer.submit({ prior, after, events, datas, metadataJson }))
  const real = (d: Date | null) => (d && d.getTime() === RECORDED_AT.getTime() ? recordedAt : d)
  return { ...after, activatedAt: real(after.activatedAt), lastUsedAt: real(after.lastUsedAt), importedAt: real(after.importedAt) }
}
