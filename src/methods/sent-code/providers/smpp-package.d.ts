// The parts of the `smpp` package (SMPP v3.4/v5.0 client and server) the gateway and its tests use.
declare module 'smpp' {
  import type { EventEmitter } from 'node:events'
  export interface PDU {
    command: string
    command_status: number
    sequence_number: number
    message_id?: string
    system_id?: string
    password?: string
    destination_addr?: string
    source_addr?: string
    esm_class?: number
    registered_delivery?: number
    short_message?: { message?: string } | string | Buffer
    receipted_message_id?: string
    message_state?: number
    response(options?: Record<string, unknown>): PDU
  }
  export interface Session extends EventEmitter {
    send(pdu: PDU, responseCallback?: (pdu: PDU) => void): boolean
    bind_transceiver(options: Record<string, unknown>, callback: (pdu: PDU) => void): void
    submit_sm(options: Record<string, unknown>, callback: (pdu: PDU) => void): void
    deliver_sm(options: Record<string, unknown>, callback?: (pdu: PDU) => void): void
    close(callback?: () => void): void
    destroy(callback?: () => void): void
    pause(): void
    resume(): void
  }
  export interface Server extends EventEmitter {
    listen(port: number, host?: string, callback?: () => void): void
    close(callback?: () => void): void
    address(): { port: number }
  }
  export function connect(options: { url: string; auto_enquire_link_period?: number; connectTimeout?: number }, callback?: () => void): Session
  export function createServer(listener: (session: Session) => void): Server
  export const ESME_RBINDFAIL: number
  export const ESME_RSUBMITFAIL: number
  export const ESME_RTHROTTLED: number
  export const ESME_RINVDSTADR: number
  const smpp: { connect: typeof connect; createServer: typeof createServer; ESME_RBINDFAIL: number; ESME_RSUBMITFAIL: number; ESME_RTHROTTLED: number; ESME_RINVDSTADR: number }
  export default smpp
}
