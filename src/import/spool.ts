// An uploaded inventory is received whole before anything is imported, so that one over the size limit is
// refused before a row is written (413, nothing imported), however it was sent (a Content-Length, or
// chunked). It waits in a temporary file encrypted with a key that exists only in this process's memory
// (AES-256-CTR): the seeds in it are never on disk in the clear, and a crash leaves only ciphertext nobody
// can read. The file is deleted when the import ends.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

export class TooLarge extends Error {
  override name = 'PayloadTooLarge'
  statusCode = 413
  constructor(max: number) {
    super(`The file is larger than ${Math.round(max / 1024 / 1024)} MiB: nothing was imported. Split it and import each part.`)
  }
}

export interface Spooled {
  /** The upload, decrypted as it is read. */
  open(): Readable
  remove(): Promise<void>
}

/**
 * Receives the whole upload (at most `max` bytes) into an encrypted temporary file. Past the limit the rest
 * is read and dropped (so that the answer reaches the sender, whose request is not cut off) and TooLarge
 * thrown: nothing of it is kept.
 */
export async function spool(upload: NodeJS.ReadableStream, max: number): Promise<Spooled> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-upload-'))
  const file = path.join(dir, 'upload')
  const key = randomBytes(32)
  const iv = randomBytes(16)
  const remove = () => fs.rm(dir, { recursive: true, force: true })
  const cipher = createCipheriv('aes-256-ctr', key, iv)
  const written = pipeline(cipher, createWriteStream(file, { mode: 0o600 }))
  let bytes = 0
  let over = false
  try {
    for await (const chunk of upload as AsyncIterable<Buffer | string>) {
      if (over) continue
      bytes += chunk.length
      if (bytes > max) {
        over = true
        cipher.end()
        continue
      }
      if (!cipher.write(chunk)) await once(cipher, 'drain')
    }
    if (!over) cipher.end()
    await written
  } catch (error) {
    cipher.destroy()
    await written.catch(() => {})
    await remove()
    throw error
  }
  if (over) {
    await remove()
    throw new TooLarge(max)
  }
  return {
    open: () => createReadStream(file).pipe(createDecipheriv('aes-256-ctr', key, iv)),
    remove,
  }
}
