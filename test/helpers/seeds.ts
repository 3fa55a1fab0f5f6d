// A different 20-byte seed per serial (the serial's digits over the RFC 4226 seed): hex for oathtool,
// Base32 for an Entra inventory file.
import { SEED_HEX } from '../fixtures/rfc-vectors.js'

export function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = ''
  for (const b of bytes) bits += b.toString(2).padStart(8, '0')
  return bits.match(/.{1,5}/g)!.map((c) => alphabet[parseInt(c.padEnd(5, '0'), 2)]).join('')
}

export function seedOf(serial: string): { hex: string; b32: string } {
  const hex = Buffer.from([...Buffer.from(SEED_HEX, 'hex')].map((b, i) => b ^ (serial.charCodeAt(i % serial.length) & 0x0f))).toString('hex')
  return { hex, b32: base32(Buffer.from(hex, 'hex')) }
}
