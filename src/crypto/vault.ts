// The seed vault: seeds encrypted at rest with AES-256-GCM, the serial as additional data (a ciphertext
// moved to another token does not decrypt), each ciphertext tagged with its key id for rotation.
// Fingerprints are keyed HMACs, so an auditor can match a seed without seeing it.
import { createCipheriv, createDecipheriv, createHash, createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'

export interface MasterKey {
  id: string
  key: Buffer
}

export interface SealedSeed {
  keyId: string
  nonce: Buffer
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer
}

export class VaultError extends Error {
  override name = 'VaultError'
}

export function keyIdOf(key: Buffer): string {
  return `k${createHash('sha256').update(key).digest('hex').slice(0, 12)}`
}

export function masterKey(key: Buffer): MasterKey {
  if (key.length !== 32) throw new VaultError('a master key is 32 bytes')
  return { id: keyIdOf(key), key }
}

/** GCM's 96-bit nonce (NIST SP 800-38D), random for each seal. */
const NONCE_BYTES = 12
/** Nonces drawn from the random source at a time: one call for many seals (an import seals thousands). */
const NONCES_PER_DRAW = 256

function keyObjects(keys: MasterKey[]): Map<string, KeyObject> {
  return new Map(keys.map((k) => [k.id, createSecretKey(k.key)]))
}

export class SeedVault {
  // Key objects, made once: a raw key given to createCipheriv is imported again on every seal.
  private keys: Map<string, KeyObject>
  private currentId: string
  // A drawn block is only ever cut into nonces, never refilled: sealed seeds keep views of it.
  private nonces = Buffer.alloc(0)
  private nonceAt = 0

  /**
   * @param keys the current key first, then older ones still needed to decrypt
   * @param reload called once when a ciphertext names a key we do not hold (rotated by another process)
   */
  constructor(
    keys: MasterKey[],
    private readonly fingerprintKey: Buffer,
    private readonly reload?: () => MasterKey[],
  ) {
    if (keys.length === 0) throw new VaultError('the vault needs a master key')
    this.keys = keyObjects(keys)
    this.currentId = keys[0]!.id
  }

  get currentKeyId(): string {
    return this.currentId
  }

  seal(serial: string, seed: Buffer): SealedSeed {
    const nonce = this.nextNonce()
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentId)!, nonce)
    cipher.setAAD(Buffer.from(serial, 'utf8'))
    const body = cipher.update(seed)
    cipher.final() // GCM adds no bytes here; it computes the tag
    const ciphertext = Buffer.allocUnsafe(body.length + 16)
    body.copy(ciphertext)
    cipher.getAuthTag().copy(ciphertext, body.length)
    return { keyId: this.currentId, nonce, ciphertext }
  }

  private nextNonce(): Buffer {
    if (this.nonceAt + NONCE_BYTES > this.nonces.length) {
      this.nonces = randomBytes(NONCE_BYTES * NONCES_PER_DRAW)
      this.nonceAt = 0
    }
    return this.nonces.subarray(this.nonceAt, (this.nonceAt += NONCE_BYTES))
  }

  open(serial: string, sealed: SealedSeed): Buffer {
    let key = this.keys.get(sealed.keyId)
    if (!key && this.reload) {
      const keys = this.reload()
      this.keys = keyObjects(keys)
      this.currentId = keys[0]!.id
      key = this.keys.get(sealed.keyId)
    }
    if (!key) throw new VaultError(`no master key ${sealed.keyId} to decrypt the seed of token ${serial}`)
    const body = sealed.ciphertext.subarray(0, sealed.ciphertext.length - 16)
    const tag = sealed.ciphertext.subarray(sealed.ciphertext.length - 16)
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.nonce)
    decipher.setAAD(Buffer.from(serial, 'utf8'))
    decipher.setAuthTag(tag)
    try {
      return Buffer.concat([decipher.update(body), decipher.final()])
    } catch {
      throw new VaultError(`the seed of token ${serial} does not decrypt (wrong key or altered ciphertext)`)
    }
  }

  /** A keyed hash of a short secret or identifier (a sent code, a phone number), for one purpose: compared, never reversed. */
  keyedHash(purpose: string, value: string): Buffer {
    return createHmac('sha256', this.fingerprintKey).update(`${purpose}\u0000${value}`).digest()
  }

  /** A keyed fingerprint of a seed: equal seeds give equal fingerprints, and it reveals nothing else. */
  fingerprint(seed: Buffer): string {
    return createHmac('sha256', this.fingerprintKey).update(seed).digest('hex').slice(0, 32)
  }
}
