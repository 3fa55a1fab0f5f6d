// An instant an auditor gives (a filter's bound, "state as of"): an ISO date and time in years 1 to
// 9999, what the log's times can be and what PostgreSQL reads back from an ISO string.

/** The instant `value` names, or null when it is not one. */
export function parseInstant(value: string): Date | null {
  const d = new Date(value)
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1 || d.getUTCFullYear() > 9999) return null
  return d
}

/** How a refusal says what an instant should look like. */
export const INSTANT_EXAMPLE = 'a date and time like 2026-11-22T10:00:00Z'
