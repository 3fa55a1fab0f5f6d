// Named prepared statements for the hot paths (a verification's load and write, the OpenID provider's
// storage): PostgreSQL parses and plans them once per connection instead of on every execution, which
// roughly halves a simple statement's server time and trims the client's.
// - Only statements run through executePrepared are prepared, and only those whose text does not depend on
//   the data (arrays and parameters, not a list of placeholders per value): the registry stays small.
// - A statement's name is derived from its text, so one text is one statement on every connection.
// - A prepared statement keeps the result columns it was planned with: list the columns (no `select *`), or a
//   column added by a migration while the gateway runs would make it fail ("cached plan must not change
//   result type").
import { createHash } from 'node:crypto'
import type { CompiledQuery, QueryResult } from 'kysely'
import pg from 'pg'
import type { Executor } from '../read-models/database.js'

/** Beyond this many distinct texts, statements run unnamed: a text built from data must not fill the server. */
const MAX_STATEMENTS = 256

const names = new Map<string, string>()

function nameOf(text: string): string | undefined {
  let name = names.get(text)
  if (name === undefined && names.size < MAX_STATEMENTS) {
    name = `tessera_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`
    names.set(text, name)
  }
  return name
}

/** Runs `query` (a Kysely query or sql`` template) as a named prepared statement on `db`'s connection. */
export async function executePrepared<R>(db: Executor, query: { compile(executor: Executor): CompiledQuery<R> }): Promise<QueryResult<R>> {
  const compiled = query.compile(db)
  nameOf(compiled.sql)
  return db.executeQuery(compiled)
}

type Query = (this: pg.Client, config: unknown, values?: unknown, callback?: unknown) => unknown

/**
 * The pool's client: a text registered by executePrepared goes out as a named statement (Parse once, then
 * Bind/Execute); anything else as before.
 */
export class PreparingClient extends pg.Client {}

;(PreparingClient.prototype as unknown as { query: Query }).query = function query(config, values, callback) {
  // Looked up on every call, so whatever wraps pg.Client's query (the bench's statement counter) still sees it.
  const base = pg.Client.prototype.query as unknown as Query
  if (typeof config === 'string' && Array.isArray(values) && callback === undefined) {
    const name = names.get(config)
    if (name) return base.call(this, { name, text: config, values })
  }
  return base.call(this, config, values, callback)
}
