// RFC 4648 Base32 for secret keys as hardware token vendors print them: any case, spaces anywhere,
// optional "=" padding at the end. Bits left over at the end (fewer than 8) are dropped, as OTP apps do:
// Microsoft's own example key "2234567abcdef2234567abcdef" is 26 characters, 16 bytes and 2 spare bits.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i

/** The key without spaces, upper-cased, padding dropped; null when it has any other character. */
export function normalizeBase32(text: string): string | null {
  const upper = text.replace(/\s+/g, '').toUpperCase()
  const m = /^([A-Z2-7]*)=*$/.exec(upper)
  return m ? m[1]! : null
}

/** Decodes normalized Base32 (see normalizeBase32); leftover bits at the end are dropped. */
export function decodeBase32(normalized: string): Buffer {
  const out = Buffer.alloc(Math.floor((normalized.length * 5) / 8))
  let bits = 0
  let value = 0
  let j = 0
  for (let i = 0; i < normalized.length; i++) {
    const v = VALUE[normalized.charCodeAt(i)] ?? -1
    if (v < 0) throw new Error('not normalized Base32') // no key text in the message
    value = ((value << 5) | v) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[j++] = (value >>> bits) & 0xff
    }
  }
  return out
}
