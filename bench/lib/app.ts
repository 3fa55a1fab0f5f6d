// The real gateway for a scenario: the same Fastify options and plugins as src/server.ts (serverOptions,
// src/app.js), on the bench database, listening on 127.0.0.1, logging warnings only. Its data directory
// is a temporary directory under .tessera-bench, removed on close; master and session keys are random, one
// pair for the run.
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { loadConfig, serverOptions, type AppConfig } from '../../fastify.config.js'
import app from '../../src/app.js'

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
/**
 * One master and session key for every gateway of a run: the provider's signing keys are sealed in the
 * database, so a gateway started by a later scenario must open what an earlier one sealed, as a gateway
 * restarted on the same database does.
 */
const MASTER_KEY = randomBytes(32).toString('base64')
const SESSION_KEY = randomBytes(32).toString('base64')

export interface BenchApp {
  app: FastifyInstance
  config: AppConfig
  /** http://127.0.0.1:<port>, also the app's PUBLIC_URL (the issuer is <base>/oidc). */
  base: string
  close(): Promise<void>
}

/** A port that was free a moment ago (the issuer URL must name the port before the app listens). */
async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

export async function startBenchApp(databaseUrl: string, env: Record<string, string> = {}): Promise<BenchApp> {
  const parent = path.join(ROOT_DIR, '.tessera-bench')
  await fs.mkdir(parent, { recursive: true })
  // Keep git from seeing the directory when the harness did not create it (external DATABASE_URL).
  await fs.writeFile(path.join(parent, '.gitignore'), '*\n', { flag: 'wx' }).catch(() => {})
  const dataDir = await fs.mkdtemp(path.join(parent, 'app-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    TESSERA_DATA_DIR: dataDir,
    TESSERA_MASTER_KEY: MASTER_KEY,
    TESSERA_SESSION_KEY: SESSION_KEY,
    LOG_LEVEL: 'warn',
    PORT: String(port),
    PUBLIC_URL: base,
    // The gateway's Redis (rate limits, and what else it keeps there), when the bench is given one.
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...env,
  })
  const options = serverOptions(config)
  const fastify = Fastify({ ...options, logger: { ...(options.logger as object), level: 'warn' } })
  try {
    await fastify.register(app, { config, databaseUrl })
    await fastify.listen({ port, host: '127.0.0.1' })
  } catch (error) {
    await fastify.close().catch(() => {})
    await fs.rm(dataDir, { recursive: true, force: true })
    throw error
  }
  return {
    app: fastify,
    config,
    base,
    async close() {
      await fastify.close().catch(() => {})
      await fs.rm(dataDir, { recursive: true, force: true })
    },
  }
}
