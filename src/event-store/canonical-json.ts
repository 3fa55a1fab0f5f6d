// jsonb's text form, written without the database: what `value::jsonb::text` prints for the JSON that
// JSON.stringify(value) would give. An event's hash covers its data and metadata in this form, so a writer
// that chains hashes itself (the COPY append) must produce exactly these bytes.
// - Object keys: each once, ordered by UTF-8 length, then bytewise (PostgreSQL's lengthCompareJsonbString).
// - ", " between members and elements, ": " after a key; `{}` and `[]` when empty.
// - Strings escaped as PostgreSQL's escape_json does, which for any well-formed string is JSON.stringify's.
// - Numbers as numeric_out prints them: in positional notation, never with an exponent.
// - As JSON.stringify: toJSON is called; undefined, functions and symbols drop out of objects and are null
//   in arrays; NaN and the infinities are null; a bigint or a cycle throws.

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false
  return true
}

// For ASCII keys, UTF-16 order is byte order and length is byte length.
const asciiOrder = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)

function utf8Order(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length - y.length || Buffer.compare(x, y)
}

interface Shape {
  /** The keys in the object's own order. */
  keys: string[]
  /** The same keys in jsonb's order, each written out as `"key": `. */
  members: { key: string; name: string }[]
}

// Events of one type have the same keys in the same order: their sorted order is worked out once.
const SHAPES_KEPT = 32
const shapes: Shape[] = []

function shapeOf(object: object): Shape {
  const keys = Object.keys(object)
  search: for (const shape of shapes) {
    if (shape.keys.length !== keys.length) continue
    for (let i = 0; i < keys.length; i++) if (shape.keys[i] !== keys[i]) continue search
    return shape
  }
  const sorted = [...keys].sort(keys.every(isAscii) ? asciiOrder : utf8Order)
  const shape = { keys, members: sorted.map((key) => ({ key, name: `${JSON.stringify(key)}: ` })) }
  if (shapes.length >= SHAPES_KEPT) shapes.pop()
  shapes.unshift(shape)
  return shape
}

/** A finite number as numeric_out prints it: JavaScript's exponent forms written out in full. */
export function numericText(n: number): string {
  const text = String(n)
  const e = text.indexOf('e')
  if (e < 0) return text
  const negative = text[0] === '-'
  const mantissa = text.slice(negative ? 1 : 0, e)
  const exponent = Number(text.slice(e + 1))
  const point = mantissa.indexOf('.')
  const digits = point < 0 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1)
  const at = (point < 0 ? mantissa.length : point) + exponent
  const body = at <= 0 ? `0.${'0'.repeat(-at)}${digits}`
    : at >= digits.length ? digits + '0'.repeat(at - digits.length)
    : `${digits.slice(0, at)}.${digits.slice(at)}`
  return negative ? `-${body}` : body
}

function write(value: unknown, inArray: boolean, seen: unknown[]): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON(): unknown }).toJSON()
  }
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      return Number.isFinite(value) ? numericText(value) : 'null'
    case 'boolean':
      return value ? 'true' : 'false'
    case 'bigint':
      throw new TypeError('a bigint has no JSON form')
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? 'null' : undefined
  }
  if (value === null) return 'null'
  if (seen.includes(value)) throw new TypeError('the value refers to itself: it has no JSON form')
  seen.push(value)
  let out: string
  if (Array.isArray(value)) {
    out = '['
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ', ' : '') + write(value[i], true, seen)!
    out += ']'
  } else {
    const object = value as Record<string, unknown>
    out = '{'
    let first = true
    for (const { key, name } of shapeOf(object).members) {
      const member = write(object[key], false, seen)
      if (member === undefined) continue
      out += first ? name + member : `, ${name}${member}`
      first = false
    }
    out += '}'
  }
  seen.pop()
  return out
}

/** The text PostgreSQL prints for this value as jsonb; undefined where JSON.stringify gives undefined. */
export function canonicalJson(value: unknown): string | undefined {
  return write(value, false, [])
}
