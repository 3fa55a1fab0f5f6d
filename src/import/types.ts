// What an inventory parser yields: each data line either a token to import or a reason it was refused.
// Parsers know file formats only; the import command checks the inventory and users.

import type { OtpAlgorithm } from '../domain/otp/otp.js'

export type { OtpAlgorithm }

/** One token as read from a file. The seed is raw bytes, never logged or put in an event. */
export interface ImportedToken {
  line: number
  serial: string
  kind: 'totp' | 'hotp'
  algorithm: OtpAlgorithm
  digits: 6 | 8
  /** TOTP time step in seconds (30 or 60); null for HOTP. */
  period: number | null
  /** HOTP counter (the next value the token will show); null for TOTP. */
  counter: number | null
  seed: Buffer
  /** The user to assign it to; null for an unassigned (inventory) token. */
  upn: string | null
  manufacturer: string | null
  model: string | null
}

export interface RejectedRow {
  line: number
  /** As read from the line, when there was one. */
  serial: string | null
  /** Plain words for a person, like Entra's failures file. Never contains the seed. */
  reason: string
}

export type ParsedRow = { ok: true; token: ImportedToken } | { ok: false; rejected: RejectedRow }

/** The file itself is unusable (wrong header, not CSV): nothing can be imported. */
export class UnusableFile extends Error {
  override name = 'UnusableFile'
}

export type InventoryFormat = 'entra' | 'oath' | 'pskc'
export const INVENTORY_FORMATS: readonly InventoryFormat[] = ['entra', 'oath', 'pskc']
