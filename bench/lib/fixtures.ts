// What the bench writes: OTP verification events of about 200 bytes of data, with the metadata
// every event carries (same shape as test/helpers/database.ts metadata()).
import type { EventMetadata, NewEvent } from '../../src/event-store/types.js'

export const EVENT_TYPE = 'OtpVerified'

export function benchMetadata(correlationId = 'bench-corr'): EventMetadata {
  return {
    correlationId,
    causationId: null,
    actor: { type: 'system', id: 'bench' },
    requestId: null,
    sourceIp: null,
    userAgent: null,
    relyingApplication: null,
  }
}

/** Pads the data so that its JSON is about 200 bytes. */
const PADDING = 'p'.repeat(70)

/** One OtpVerified event's data; JSON.stringify of it is 190-210 bytes. */
export function otpVerifiedData(streamNo: number, counter: number): Record<string, unknown> {
  return {
    tokenId: `tok-${streamNo}`,
    userId: `user-${streamNo}`,
    method: 'totp',
    counter,
    drift: 0,
    relyingApplication: 'bench-app',
    padding: PADDING,
  }
}

export function otpVerified(streamNo: number, counter: number): NewEvent {
  return { type: EVENT_TYPE, data: otpVerifiedData(streamNo, counter) }
}

/**
 * The same data built in SQL, for bulk loads: `stream` and `counter` are SQL expressions.
 * jsonb sorts keys and adds spaces, so the stored text differs in form, not in size class.
 */
export function otpVerifiedDataSql(stream: string, counter: string): string {
  return `jsonb_build_object('tokenId', 'tok-' || ${stream}, 'userId', 'user-' || ${stream}, 'method', 'totp',
    'counter', ${counter}, 'drift', 0, 'relyingApplication', 'bench-app', 'padding', '${PADDING}')`
}
