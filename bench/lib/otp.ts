// The bench's own OTP side, independent of src/: HOTP codes as a token computes them (RFC 4226) and Base32
// as inventory files write secrets (RFC 4648). A bench that got these wrong would fail its checks, not pass.
import { createHmac } from 'node:crypto'

/** RFC 4226 HOTP with HMAC-SHA-1: the code a token shows for `counter`. */
export function hotp(seed: Buffer, counter: number, digits: 6 | 8 = 6): string {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac('sha1', seed).update(message).digest()
  const offset = mac[mac.length - 1]! & 0x0f
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!
  return String(binary % 10 ** digits).padStart(digits, '0')
}

/** Throws unless hotp() gives RFC 4226 appendix D's test values. */
export function checkHotpVectors(): void {
  const seed = Buffer.from('12345678901234567890', 'ascii')
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489']
  expected.forEach((code, counter) => {
    const got = hotp(seed, counter)
    if (got !== code) throw new Error(`bench HOTP is wrong: counter ${counter} gave ${got}, RFC 4226 says ${code}`)
  })
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** RFC 4648 Base32 without padding (a 20-byte seed is 32 characters, no padding needed). */
export function base32(bytes: Uint8Array): string {
  let out = ''
  let value = 0
  let bits = 0
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xffff
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31]
  return out
}
