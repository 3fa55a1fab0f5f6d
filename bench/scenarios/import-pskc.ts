// import-pskc: a PSKC file (RFC 6030) of BENCH_IMPORT_ROWS keys (default 100,000), encrypted under a key
// derived from a password (PBKDF2, 1,000 iterations, as in RFC 6030's figure 7), each key AES-128-CBC with its
// own IV and an HMAC-SHA1 ValueMAC, written to a file first (untimed), then read from it as the CLI reads
// a vendor's file, through the real code path: parseInventory('pskc', stream, { password }) -> importTokens
// (one transaction for the whole PSKC file).
// In the same run, an Entra CSV of as many rows, written and read the same way, through the CSV path: PSKC
// is reported as a ratio of the CSV rate (the goal: at least half).
import { createCipheriv, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { importTokens } from '../../src/commands/import-tokens.js'
import type { CommandContext } from '../../src/commands/context.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { parseInventory } from '../../src/import/index.js'
import { benchMetadata } from '../lib/fixtures.js'
import { entraCsv } from './import.js'
import { cpuSince, MB, PeakMemory, round } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const CHUNK_KEYS = 1_000
export const PASSWORD = 'bench vendor password'
const MAX_PEAK_RSS_GROWTH_MB = 256

function encrypt(key: Buffer, plain: Buffer): Buffer {
  const iv = randomBytes(16)
  const cipher = createCipheriv('aes-128-cbc', key, iv)
  return Buffer.concat([iv, cipher.update(plain), cipher.final()])
}

/** The PSKC file, CHUNK_KEYS KeyPackages per chunk; its encryption done here, counted apart (generatorUsPerKey). */
export async function* pskcFile(keys: number, serialPrefix: string, onChunk: () => void): AsyncGenerator<string> {
  const salt = randomBytes(8)
  const encryptionKey = pbkdf2Sync(PASSWORD, salt, 1000, 16, 'sha1')
  const macKey = randomBytes(20)
  yield `<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:xenc11="http://www.w3.org/2009/xmlenc11#"
  xmlns:pkcs5="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Version="1.0">
 <pskc:EncryptionKey><xenc11:DerivedKey><xenc11:KeyDerivationMethod Algorithm="http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2">
  <pkcs5:PBKDF2-params><Salt><Specified>${salt.toString('base64')}</Specified></Salt><IterationCount>1000</IterationCount><KeyLength>16</KeyLength><PRF/></pkcs5:PBKDF2-params>
 </xenc11:KeyDerivationMethod></xenc11:DerivedKey></pskc:EncryptionKey>
 <pskc:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"><pskc:MACKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
  <xenc:CipherData><xenc:CipherValue>${encrypt(encryptionKey, macKey).toString('base64')}</xenc:CipherValue></xenc:CipherData></pskc:MACKey></pskc:MACMethod>
`
  for (let from = 0; from < keys; from += CHUNK_KEYS) {
    const n = Math.min(CHUNK_KEYS, keys - from)
    const seeds = randomBytes(20 * n)
    const parts = new Array<string>(n)
    for (let i = 0; i < n; i++) {
      const value = encrypt(encryptionKey, seeds.subarray(i * 20, i * 20 + 20))
      const mac = createHmac('sha1', macKey).update(value).digest()
      parts[i] = `<pskc:KeyPackage><pskc:DeviceInfo><pskc:Manufacturer>Token2</pskc:Manufacturer><pskc:SerialNo>${serialPrefix}${from + i}</pskc:SerialNo><pskc:Model>C203</pskc:Model></pskc:DeviceInfo>`
        + `<pskc:Key Id="${from + i}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc#totp"><pskc:AlgorithmParameters><pskc:ResponseFormat Length="6" Encoding="DECIMAL"/></pskc:AlgorithmParameters>`
        + `<pskc:Data><pskc:Secret><pskc:EncryptedValue><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><xenc:CipherData><xenc:CipherValue>${value.toString('base64')}</xenc:CipherValue></xenc:CipherData></pskc:EncryptedValue>`
        + `<pskc:ValueMAC>${mac.toString('base64')}</pskc:ValueMAC></pskc:Secret><pskc:TimeInterval><pskc:PlainValue>30</pskc:PlainValue></pskc:TimeInterval></pskc:Data></pskc:Key></pskc:KeyPackage>`
    }
    yield `${parts.join('\n')}\n`
    onChunk()
  }
  yield '</pskc:KeyContainer>\n'
}

async function generatorUsPerKey(): Promise<number> {
  const keys = 10_000
  const start = performance.now()
  let bytes = 0
  for await (const chunk of pskcFile(keys, 'gen-', () => {})) bytes += chunk.length
  return bytes > 0 ? ((performance.now() - start) * 1000) / keys : 0
}

export const importPskc: Scenario = {
  name: 'import-pskc',
  description: 'PSKC (PBKDF2 + AES-128-CBC + HMAC-SHA1 per key) streamed through parseInventory + importTokens, beside the CSV path',
  // The check that matters is the ratio to the CSV path in the same run; this is half of what CSV reaches here.
  target: { opsPerSec: 10_000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const keys = ctx.options.importRows
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }
    const meta = { ...benchMetadata('bench-import-pskc'), actor: { type: 'admin' as const, id: 'bench' } }
    const genUs = await generatorUsPerKey()

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tessera-bench-pskc-'))
    const files = { entra: path.join(dir, 'tokens.csv'), pskc: path.join(dir, 'tokens.pskcxml') }
    await pipeline(Readable.from(entraCsv(keys, `bc${ctx.runId}-`)), createWriteStream(files.entra))
    await pipeline(Readable.from(pskcFile(keys, `bp${ctx.runId}-`, () => {})), createWriteStream(files.pskc))
    const sizes = { entra: (await fs.stat(files.entra)).size, pskc: (await fs.stat(files.pskc)).size }
    const timed = async (format: 'entra' | 'pskc', memory?: PeakMemory) => {
      const cpu = process.cpuUsage()
      const start = performance.now()
      const source = createReadStream(files[format], { highWaterMark: 256 * 1024 })
      const report = await importTokens(commands, parseInventory(format, source, { password: PASSWORD }), meta, { format, onProgress: () => memory?.sample() })
      return { report, seconds: (performance.now() - start) / 1000, cpu: cpuSince(cpu).seconds }
    }

    ctx.log(`import-pskc: ${keys} keys of CSV, then ${keys} keys of PSKC`)
    let csv, pskc
    const memory = new PeakMemory()
    try {
      csv = await timed('entra')
      memory.sample()
      pskc = await timed('pskc', memory)
    } finally {
      memory.stop()
      await fs.rm(dir, { recursive: true, force: true })
    }
    const { peakRssGrowthMb } = memory.stop()
    const stored = Number((await sql<{ n: string }>`select count(*) as n from tokens where serial like ${`bp${ctx.runId}-%`}`.execute(ctx.db)).rows[0]!.n)
    const csvRate = csv.report.imported / csv.seconds
    const pskcRate = pskc.report.imported / pskc.seconds
    const ratio = pskcRate / csvRate
    return {
      unit: 'tokens',
      operations: pskc.report.imported,
      seconds: pskc.seconds,
      checks: [
        { name: 'every key imported', pass: pskc.report.imported === keys && pskc.report.rejectedCount === 0, detail: `${pskc.report.imported} of ${keys}, ${pskc.report.rejectedCount} refused` },
        { name: 'stored', pass: stored === keys, detail: `${stored} tokens rows` },
        { name: 'at least half the CSV rate', pass: ratio >= 0.5, detail: `PSKC ${Math.round(pskcRate)}/s vs CSV ${Math.round(csvRate)}/s in this run: ratio ${round(ratio, 2)}` },
        { name: 'flat memory', pass: peakRssGrowthMb < MAX_PEAK_RSS_GROWTH_MB, detail: `peak RSS growth ${round(peakRssGrowthMb)} MB (< ${MAX_PEAK_RSS_GROWTH_MB})` },
      ],
      details: {
        keys,
        pskcTokensPerSec: Math.round(pskcRate),
        csvTokensPerSec: Math.round(csvRate),
        ratioToCsv: round(ratio, 2),
        pskcNodeCpuUsPerToken: round((pskc.cpu * 1e6) / Math.max(1, pskc.report.imported), 1),
        csvNodeCpuUsPerToken: round((csv.cpu * 1e6) / Math.max(1, csv.report.imported), 1),
        // Making and encrypting the file, untimed (a vendor does it): its cost per key, for reference.
        generatorUsPerKey: round(genUs, 2),
        pskcFileMb: round(sizes.pskc / MB, 1),
        csvFileMb: round(sizes.entra / MB, 1),
        peakRssGrowthMb: round(peakRssGrowthMb),
        baseRssMb: round(memory.base.rss / MB),
      },
    }
  },
}
