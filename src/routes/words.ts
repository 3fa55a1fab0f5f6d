// Words for pages and the CLI: counts with the right plural, instants as a person reads them, and the
// code lengths a user's own tokens show.

/** "1 time step", "3 time steps"; `many` when the plural is not the word with an s. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** "3 Dec 2026, 14:05 UTC": the instant in UTC, to the minute. */
export function when(date: Date): string {
  return `${date.toLocaleString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })} UTC`
}

/** "6-digit", "8-digit" or "6- or 8-digit": the lengths the given tokens show. */
export function codeLength(digits: Iterable<number>): string {
  const set = [...new Set(digits)].sort()
  if (set.length === 0) return '6- or 8-digit'
  return set.length === 1 ? `${set[0]}-digit` : `${set.slice(0, -1).join('-, ')}- or ${set.at(-1)}-digit`
}
