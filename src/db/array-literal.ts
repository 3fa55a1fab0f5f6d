// PostgreSQL array literals ('{"a","b",NULL}') for column arrays sent as one text parameter each, cast in
// the statement (`${arrayLiteral(serials)}::text[]`). pg's own serializer runs two regular expressions over
// every element, numbers included: for an import's thousands of rows a batch, most of the client's time
// after the seals. Elements are quoted, so any text goes; only '"' and '\' are escaped (PostgreSQL's
// array_in rules), and only in the elements that have one.

const NEEDS_ESCAPE = /["\\]/

/** text[], integer[], bigint[], smallint[] or boolean[] literal; null and undefined become NULL. */
export function arrayLiteral(values: readonly (string | number | boolean | null | undefined)[]): string {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) out += ','
    if (v === null || v === undefined) out += 'NULL'
    else if (typeof v !== 'string') out += String(v)
    else if (NEEDS_ESCAPE.test(v)) out += `"${v.replace(/["\\]/g, '\\$&')}"`
    else out += `"${v}"`
  }
  return `${out}}`
}

/** bytea[] literal: each element in hex ('\x...'), its backslash escaped for the array. */
export function byteaArrayLiteral(values: readonly (Buffer | null)[]): string {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (i > 0) out += ','
    out += v === null || v === undefined ? 'NULL' : `"\\\\x${v.toString('hex')}"`
  }
  return `${out}}`
}
