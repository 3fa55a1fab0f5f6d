// A Redis of the test's own (redis-server on a free loopback port, nothing kept on disk), which the test
// can stop and start again: for what the gateway does while Redis is down.
import { spawn, type ChildProcess } from 'node:child_process'
import type { Test } from 'tap'
import { freePort } from './net.js'

export interface OwnRedis {
  port: number
  url: string
  start(): Promise<void>
  stop(): Promise<void>
}

export async function ownRedis(t: Test): Promise<OwnRedis> {
  const port = await freePort()
  let redis: ChildProcess | null = null
  const own: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
      for (let i = 0; i < 100; i++) {
        const up = await new Promise<boolean>((resolve) => {
          const probe = spawn('redis-cli', ['-p', String(port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] })
          let out = ''
          probe.stdout!.on('data', (d) => { out += d })
          probe.on('close', () => resolve(out.includes('PONG')))
        })
        if (up) return
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error('redis-server did not start')
    },
    async stop() {
      const child = redis
      redis = null
      if (!child) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
    },
  }
  t.teardown(() => own.stop())
  await own.start()
  return own
}
