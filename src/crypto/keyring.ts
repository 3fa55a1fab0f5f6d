// Where the master keys come from:
// - TESSERA_MASTER_KEY (32 bytes, base64), older ones in TESSERA_PREVIOUS_MASTER_KEYS (comma-separated),
//   the fingerprint key in TESSERA_FINGERPRINT_KEY (else derived from the master key: pin it before rotating);
// - otherwise a keyring file in the data directory (mode 0600), generated on first use.
import { createHmac, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { masterKey, SeedVault, VaultError, type MasterKey } from './vault.js'

export interface KeySettings {
  masterKey: string | null
  previousMasterKeys: string[]
  fingerprintKey: string | null
  dataDir: string
}

interface KeyringFile {
  fingerprintKey: string
  /** Newest first; the first is the current key. */
  keys: { key: string; createdAt: string }[]
}

export function decodeKey(name: string, value: string): Buffer {
  const key = Buffer.from(value, 'base64')
  if (key.length !== 32 || key.toString('base64').replace(/=+$/, '') !== value.trim().replace(/=+$/, '')) {
    throw new VaultError(`${name} must be 32 bytes in base64 (openssl rand -base64 32)`)
  }
  return key
}

export function keyringPath(dataDir: string): string {
  return path.join(dataDir, 'keyring.json')
}

function readKeyring(file: string): KeyringFile {
  return JSON.parse(readFileSync(file, 'utf8')) as KeyringFile
}

function writeKeyring(file: string, keyring: KeyringFile): void {
  mkdirSync(path.dirname(file), { recursive: true })
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify(keyring, null, 2), { mode: 0o600 })
  renameSync(temporary, file)
}

function keysOf(keyring: KeyringFile): MasterKey[] {
  return keyring.keys.map((k) => masterKey(Buffer.from(k.key, 'base64')))
}

export function openVault(settings: KeySettings, log: (message: string) => void = () => {}): SeedVault {
  if (settings.masterKey) {
    const current = decodeKey('TESSERA_MASTER_KEY', settings.masterKey)
    const keys = [masterKey(current), ...settings.previousMasterKeys.map((k) => masterKey(decodeKey('TESSERA_PREVIOUS_MASTER_KEYS', k)))]
    const fingerprint = settings.fingerprintKey
      ? decodeKey('TESSERA_FINGERPRINT_KEY', settings.fingerprintKey)
      : createHmac('sha256', current).update('tessera seed fingerprint').digest()
    return new SeedVault(keys, fingerprint)
  }
  const file = keyringPath(settings.dataDir)
  if (!existsSync(file)) {
    writeKeyring(file, {
      fingerprintKey: randomBytes(32).toString('base64'),
      keys: [{ key: randomBytes(32).toString('base64'), createdAt: new Date().toISOString() }],
    })
    log(`generated a master key for seeds in ${file} (mode 0600); set TESSERA_MASTER_KEY in production`)
  }
  const keyring = readKeyring(file)
  return new SeedVault(keysOf(keyring), Buffer.from(keyring.fingerprintKey, 'base64'), () => keysOf(readKeyring(file)))
}

/** Adds a new current key to the keyring file; returns its id. Only for the data-directory keyring. */
export function addKeyringKey(dataDir: string): string {
  const file = keyringPath(dataDir)
  const keyring = readKeyring(file)
  const key = randomBytes(32)
  keyring.keys.unshift({ key: key.toString('base64'), createdAt: new Date().toISOString() })
  writeKeyring(file, keyring)
  return masterKey(key).id
}
