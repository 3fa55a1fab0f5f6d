// Independent OTP codes from Debian's oathtool, never from our verifier. `.ci/run` installs it.
import { execFileSync } from 'node:child_process'

function oathtool(args: string[]): string {
  try {
    return execFileSync('oathtool', args, { encoding: 'utf8' }).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('oathtool is needed for these tests: apt-get install oathtool')
    throw error
  }
}

export interface TotpOptions {
  digits?: 6 | 8
  period?: number
  algorithm?: 'SHA1' | 'SHA256' | 'SHA512'
}

/** The TOTP code at `unixSeconds` for a hex seed. */
export function totpAt(seedHex: string, unixSeconds: number, options: TotpOptions = {}): string {
  const now = new Date(unixSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
  return oathtool([
    `--totp=${(options.algorithm ?? 'SHA1').toLowerCase()}`, '-d', String(options.digits ?? 6),
    '-s', `${options.period ?? 30}s`, '--now', now, seedHex,
  ])
}

/** The HOTP code for a hex seed at `counter`. */
export function hotpAt(seedHex: string, counter: number, digits: 6 | 8 = 6): string {
  return oathtool(['--hotp', '-d', String(digits), '-c', String(counter), seedHex])
}

/** The TOTP code at `unixSeconds` for a Base32 key as an authenticator app is given it (oathtool decodes it). */
export function totpBase32At(keyBase32: string, unixSeconds: number): string {
  const now = new Date(unixSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
  return oathtool(['--totp=sha1', '-b', '-d', '6', '-s', '30s', '--now', now, keyBase32.replace(/\s/g, '')])
}
