// import: a Microsoft Entra hardware token CSV of BENCH_IMPORT_ROWS rows (default 100,000; unassigned
// tokens, unique random 20-byte Base32 secrets), generated as a stream of chunks (never the whole file as
// one string), through the real code path: parseInventory('entra', stream) -> importTokens(ctx, rows, meta).
// Measures tokens/s and how much the process's memory grows: parsing and importing must stream.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import { DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, importTokens, type ImportReport } from '../../src/commands/import-tokens.js'
import type { CommandContext } from '../../src/commands/context.js'
import { masterKey, SeedVault } from '../../src/crypto/vault.js'
import { parseInventory } from '../../src/import/index.js'
import { benchMetadata } from '../lib/fixtures.js'
import { base32 } from '../lib/otp.js'
import { countStatements } from '../lib/pg-count.js'
import { backendCpu, backendCpuSeconds } from '../lib/server-cpu.js'
import { cpuSince, forceGc, MB, PeakMemory, round } from '../lib/stats.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/types.js'

const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model'
const CHUNK_ROWS = 1_000
const MAX_PEAK_RSS_GROWTH_MB = 256

/**
 * The file as it would arrive from an upload: the header, then CHUNK_ROWS lines per chunk. Secrets are
 * random (two equal 160-bit secrets among 10^5 have a chance of about 10^-38).
 */
export async function* entraCsv(rows: number, serialPrefix: string, onChunk: () => void = () => {}): AsyncGenerator<string> {
  yield `${HEADER}\r\n`
  for (let from = 0; from < rows; from += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, rows - from)
    const random = randomBytes(20 * n)
    const lines = new Array<string>(n)
    for (let i = 0; i < n; i++) {
      lines[i] = `,${serialPrefix}${from + i},${base32(random.subarray(i * 20, i * 20 + 20))},30,Token2,C202`
    }
    yield `${lines.join('\r\n')}\r\n`
    onChunk()
  }
}

/** Node's time to produce one row of the file, so it can be told apart from parsing and importing. */
async function generatorUsPerRow(): Promise<number> {
  const rows = 20_000
  const start = performance.now()
  let bytes = 0
  for await (const chunk of entraCsv(rows, 'gen-', () => {})) bytes += chunk.length
  return bytes > 0 ? ((performance.now() - start) * 1000) / rows : 0
}

export const importScenario: Scenario = {
  name: 'import',
  description: 'Entra CSV streamed through parseInventory + importTokens; memory must stay flat',
  target: { opsPerSec: 50_000 },

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const rows = ctx.options.importRows
    const serialPrefix = `bi${ctx.runId}-`
    const vault = new SeedVault([masterKey(randomBytes(32))], randomBytes(32))
    const commands: CommandContext = { db: ctx.db, store: ctx.store, vault, now: () => new Date() }
    const meta = { ...benchMetadata('bench-import'), actor: { type: 'admin' as const, id: 'bench' } }
    const genUs = await generatorUsPerRow()

    ctx.log(`import: ${rows} rows`)
    const gcAvailable = forceGc()
    const memory = new PeakMemory()
    let batches = 0
    const server0 = await backendCpu(ctx.db)
    const statements = countStatements()
    const cpuStart = process.cpuUsage()
    const start = performance.now()
    let report: ImportReport
    try {
      report = await importTokens(commands, parseInventory('entra', entraCsv(rows, serialPrefix, () => memory.sample())), meta, {
        format: 'entra', // batch size and concurrency as the CLI and the admin API run it
        onProgress: (read, imported) => {
          memory.sample()
          if (++batches % 20 === 0) ctx.log(`import: ${read} rows read, ${imported} imported (${round((performance.now() - start) / 1000)}s)`)
        },
      })
    } finally {
      statements.stop()
      memory.stop()
    }
    const seconds = (performance.now() - start) / 1000
    const { seconds: cpuSeconds, systemShare } = cpuSince(cpuStart)
    const statementCount = statements.stop()
    const { peakRssGrowthMb, peakHeapGrowthMb } = memory.stop()
    const serverCpuSeconds = backendCpuSeconds(server0, await backendCpu(ctx.db))
    forceGc()
    const retainedHeapMb = (process.memoryUsage().heapUsed - memory.base.heapUsed) / MB

    const stored = await sql<{ tokens: string; secrets: string; streams: string }>`
      select (select count(*) from tokens where serial like ${`${serialPrefix}%`}) as tokens,
             (select count(*) from token_secrets where serial like ${`${serialPrefix}%`}) as secrets,
             (select count(*) from streams where stream_id like ${`token-${serialPrefix}%`}) as streams`.execute(ctx.db)
    const tokensStored = Number(stored.rows[0]!.tokens)
    const secretsStored = Number(stored.rows[0]!.secrets)
    const streamsStored = Number(stored.rows[0]!.streams)

    const notes: string[] = []
    if (!gcAvailable) notes.push('no forced GC available: the retained-heap figure includes garbage')
    const firstRejected = report.rejected[0]
    if (firstRejected) notes.push(`first rejected row: line ${firstRejected.line}: ${firstRejected.reason}`)

    return {
      unit: 'tokens',
      operations: report.imported,
      seconds,
      checks: [
        { name: 'every row imported', pass: report.imported === rows, detail: `${report.imported} of ${rows}` },
        { name: 'no row rejected', pass: report.rejectedCount === 0, detail: `${report.rejectedCount} rejected` },
        {
          name: 'stored',
          pass: tokensStored === rows && secretsStored === rows && streamsStored === rows,
          detail: `${tokensStored} tokens rows, ${secretsStored} sealed seeds, ${streamsStored} streams`,
        },
        {
          name: 'flat memory',
          pass: peakRssGrowthMb < MAX_PEAK_RSS_GROWTH_MB,
          detail: `peak RSS growth ${round(peakRssGrowthMb)} MB (< ${MAX_PEAK_RSS_GROWTH_MB}), peak heap growth ` +
            `${round(peakHeapGrowthMb)} MB, retained heap ${round(retainedHeapMb)} MB`,
        },
      ],
      details: {
        rows,
        batchSize: DEFAULT_BATCH_SIZE,
        concurrency: DEFAULT_CONCURRENCY,
        batches,
        chunkRows: CHUNK_ROWS,
        nodeCpuSeconds: round(cpuSeconds, 2),
        nodeCpuUsPerToken: report.imported > 0 ? round((cpuSeconds * 1e6) / report.imported, 1) : 0,
        nodeCpuSystemShare: round(systemShare, 2),
        ...(serverCpuSeconds === null ? {} : {
          serverBackendCpuSeconds: round(serverCpuSeconds, 2),
          serverBackendCpuUsPerToken: report.imported > 0 ? round((serverCpuSeconds * 1e6) / report.imported, 1) : 0,
        }),
        msPerBatch: batches > 0 ? round((seconds * 1000) / batches, 1) : 0,
        sqlStatementsPerBatch: batches > 0 ? round(statementCount / batches, 1) : 0,
        // Making the file is part of the timed loop; this is its share.
        generatorUsPerRow: round(genUs, 2),
        baseRssMb: round(memory.base.rss / MB),
        peakRssGrowthMb: round(peakRssGrowthMb),
        peakHeapGrowthMb: round(peakHeapGrowthMb),
        retainedHeapMb: round(retainedHeapMb),
        memorySamples: memory.samples,
      },
      notes,
    }
  },
}
