// A process to be killed: run by test/server/crash.test.ts with DATABASE_URL and TESSERA_MASTER_KEY, it
// imports an Entra inventory (CRASH_ROWS rows) while it verifies HOTP codes (read from CRASH_CODES, a JSON
// file the test wrote from oathtool: serial -> codes from the token's counter on) and disables and enables
// tokens (CRASH_TOGGLE, comma-separated), through the same commands as the gateway. Each change the
// database acknowledged is printed as "ack <stream> <version>" before the next begins; the test kills it
// with SIGKILL somewhere in the middle and checks that every acknowledged change is in the log.
import { readFileSync } from 'node:fs'
import { openContext } from '../../src/cli/context.js'
import { disableToken, enableToken, verifyCode } from '../../src/commands/tokens.js'
import { importTokens } from '../../src/commands/import-tokens.js'
import { parseInventory } from '../../src/import/index.js'
import { crashInventory } from './crash-inventory.js'

const ctx = await openContext()
const commands = ctx.commands()
const meta = ctx.meta()
const ack = (serial: string, version: number) => process.stdout.write(`ack token-${serial} ${version}\n`)
const codes = JSON.parse(readFileSync(process.env.CRASH_CODES!, 'utf8')) as Record<string, { userId: string; codes: string[] }>

async function verifyAll(serial: string) {
  const { userId, codes: list } = codes[serial]!
  for (const code of list) ack(serial, (await verifyCode(commands, { serial, userId, code }, meta)).version)
}

async function toggle(serial: string) {
  for (let i = 0; ; i++) ack(serial, (await (i % 2 === 0 ? disableToken : enableToken)(commands, { serial }, meta)).version)
}

process.stdout.write('started\n')
await Promise.all([
  importTokens(commands, parseInventory('entra', crashInventory(Number(process.env.CRASH_ROWS))), meta, { format: 'entra' }),
  ...Object.keys(codes).map(verifyAll),
  ...process.env.CRASH_TOGGLE!.split(',').map(toggle),
])
