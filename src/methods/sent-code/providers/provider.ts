// A delivery provider: hands a message to a mail server or an SMS centre and says whether it took it.
// The worker (../delivery.ts) wraps every send in a timeout and tries the next provider when one fails.
export type Channel = 'sms' | 'email'

export interface OutgoingMessage {
  to: string
  text: string
  subject: string
  /** The job's id with a MAC: what a delivery report names (Kannel's dlr-url), unforgeable. */
  reference: string
}

export interface Provider {
  readonly name: string
  readonly channel: Channel
  /** Resolves with the provider's message id (null when it gives none) once the provider accepted the message. */
  send(message: OutgoingMessage, signal: AbortSignal): Promise<{ messageId: string | null }>
  /** Delivery reports (an SMPP receipt): called with the provider's message id. */
  onReceipt?(listener: (messageId: string, delivered: boolean) => void): void
  close(): Promise<void>
}

/** The provider answered and said no (a refusal, not a fault of the network). */
export class ProviderRefused extends Error {
  override name = 'ProviderRefused'
}

/** Rejects when the signal aborts, whichever comes first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason)
    signal.addEventListener('abort', abort, { once: true })
    promise.then((v) => { signal.removeEventListener('abort', abort); resolve(v) }, (e) => { signal.removeEventListener('abort', abort); reject(e) })
  })
}
