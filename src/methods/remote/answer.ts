// What a remote service said about a code, in the gateway's words. The protocol clients (vip.ts, radius.ts)
// return one of these and never throw for anything the service or the network did; the code is never in it.
export type RemoteAnswer =
  /** The service accepted the code. reason: its own word for it (VIP ReasonCode "0000", RADIUS "Access-Accept"). */
  | { result: 'accept'; reason: string }
  /**
   * The service refused the code. reason: its own code (VIP "49B5", RADIUS "Access-Reject");
   * why: what it means for the user and the audit.
   */
  | { result: 'reject'; reason: string; why: RejectReason }
  /**
   * No usable answer: timeout, connection refused, TLS refused either way, an answer that failed its check
   * (a wrong shared secret, no Message-Authenticator), a malformed answer. reason: a short token for the
   * event ("timeout", "tls-client-refused", "bad-authenticator"...); message: what went wrong, in words an
   * admin understands (shown by Test connection, logged without the code).
   */
  | { result: 'unavailable'; reason: string; message: string }

export type RejectReason = 'wrong-code' | 'disabled' | 'locked' | 'unknown-credential' | 'other'
