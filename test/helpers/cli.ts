// Runs the real `tessera` command in a child process.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../../bin/tessera.js', import.meta.url))

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

export function tessera(args: string[], env: Record<string, string>, input?: string): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }))
    if (input !== undefined) child.stdin?.end(input)
  })
}
