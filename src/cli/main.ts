// `tessera <command>`: the operator's tool. Exit codes: 0 done, 1 the check found a problem,
// 2 the command could not run (usage, connection).
import { parseArgs } from 'node:util'
import { sql } from 'kysely'
import { verifyChains } from '../event-store/verify.js'
import { allProjections, projectionNamed } from '../projections/index.js'
import { rebuildProjection } from '../projections/rebuild.js'
import { apiKeysCreate, apiKeysRevoke, clientsAdd, keysRotate, keysRotateSigning, tokensImport, tokensLifecycle, tokensRequestSoftware, usersAccount, usersAdd, usersGrant, auditReplay, auditExport, type Io } from './commands.js'
import { CliError, openContext } from './context.js'
import { remoteServices, REMOTE_USAGE, tokensAssignRemote } from '../methods/remote/cli.js'

const USAGE = `usage: tessera <command>

  --version                        print the version
  migrate                          apply pending database migrations
  projections rebuild [name]       rebuild read models from the event log (all, or one of: ${allProjections.map((p) => p.name).join(', ')})
  audit verify [--stream ID]       check every stream's hash chain; exit 1 naming the first changed event
  audit replay --stream ID|UPN [--until ISO]
                                   each event of a stream and the state after it
  audit export [--format jsonl|csv] [--from ISO] [--to ISO] [--stream ID] [--type T,..] [--out FILE]
                                   every event with its position and hash, checkable offline
  tokens import FILE [--format entra|oath|pskc] [--psk HEX | --password-stdin]
                                   import a token inventory (Entra CSV, privacyIDEA OATH CSV, PSKC
                                   XML, recognised from the file; its key or password for encrypted PSKC);
                                   exit 0 all imported, 1 some rows rejected, 2 nothing usable
  tokens unlock SERIAL             unlock a token locked by wrong codes
  tokens release SERIAL            release a token its user removed, back to the claimable inventory
  tokens revoke SERIAL --reason lost|stolen|retired|compromised
                                   revoke a token for good and destroy its seed
  tokens request-software UPN [--show]
                                   an activation code for a software token, e-mailed to the user
                                   (or printed once with --show, or when they have no address)
${REMOTE_USAGE}
  users add UPN --name NAME --password-stdin [--email ADDRESS] [--phone +NUMBER]
                                   add a local user; the password is read from standard input;
                                   the address and number are where codes and notices can go
  users grant UPN --role admin|auditor
                                   give a user a role (they sign in with a code to use it)
  users reset-password UPN         print a temporary password (72 hours, only to choose a new one);
                                   the user is signed out everywhere
  users delete UPN --yes           delete an account: signed out, never signs in again, tokens held
  keys rotate                      new master key for seeds; re-encrypt every seed under it
  keys rotate-signing              new ES256 key for ID tokens; the old one stays in the JWKS
  clients add ID --redirect-uri URI [--public] [--name NAME]
                                   register a relying application (prints its secret once)
  api-keys create --role admin|auditor [--name NAME]
                                   create a bearer key for the admin API (printed once)
  api-keys revoke ID               revoke a key at once

Uses DATABASE_URL, or the embedded PostgreSQL in TESSERA_DATA_DIR (default .tessera).`

type Out = Io
const stdio: Out = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  progress: process.stderr.isTTY ? (line) => process.stderr.write(`\r\x1b[K${line}`) : null,
  stdin: async () => {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  },
}

async function migrate(io: Out): Promise<number> {
  const ctx = await openContext({ migrate: true })
  try {
    const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(ctx.db)
    io.out(`migrations current: ${rows.rows.map((r) => r.name).join(', ')}`)
    return 0
  } finally {
    await ctx.close()
  }
}

async function rebuild(io: Out, name: string | undefined): Promise<number> {
  const projections = name ? [projectionNamed(name)] : allProjections
  if (projections[0] === undefined) {
    throw new CliError(`no projection named "${name}"; known: ${allProjections.map((p) => p.name).join(', ')}`)
  }
  const ctx = await openContext()
  try {
    for (const projection of projections) {
      const started = performance.now()
      const result = await rebuildProjection(ctx.db, ctx.store, projection!)
      io.out(`rebuilt ${result.projection} (${result.tables.join(', ')}) from ${result.events} events in ${Math.round(performance.now() - started)} ms`)
    }
    return 0
  } finally {
    await ctx.close()
  }
}

async function auditVerify(io: Out, streamId: string | undefined): Promise<number> {
  const ctx = await openContext()
  try {
    const report = await verifyChains(ctx.db, { streamId })
    if (streamId && report.events === 0 && report.breaks.length === 0) {
      throw new CliError(`stream ${streamId} has no events`)
    }
    for (const b of report.breaks) io.err(`BROKEN ${b.message}`)
    if (report.breaks.length > 0) {
      io.err(`${report.breaks.length} of ${report.streams} streams broken (${report.events} events checked)`)
      return 1
    }
    io.out(`ok: ${report.streams} streams, ${report.events} events, every hash chain intact`)
    return 0
  } finally {
    await ctx.close()
  }
}

/** The version in package.json, which releases set. */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  return (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

export async function main(argv: string[], io: Out = stdio): Promise<number> {
  io = { ...stdio, ...io }
  try {
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        stream: { type: 'string' },
        format: { type: 'string' },
        name: { type: 'string' },
        role: { type: 'string' },
        reason: { type: 'string' },
        until: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        type: { type: 'string' },
        out: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        'redirect-uri': { type: 'string', multiple: true },
        public: { type: 'boolean' },
        yes: { type: 'boolean' },
        show: { type: 'boolean' },
        psk: { type: 'string' },
        email: { type: 'string' },
        phone: { type: 'string' },
        url: { type: 'string' },
        pkcs12: { type: 'string' },
        ca: { type: 'string' },
        timeout: { type: 'string' },
        'code-lifetime': { type: 'string' },
        server: { type: 'string', multiple: true },
        retries: { type: 'string' },
        'secret-stdin': { type: 'boolean' },
        service: { type: 'string' },
        credential: { type: 'string' },
        digits: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    })
    const [command, sub, arg, ...extra] = positionals
    if (values.version) {
      io.out(`tessera ${await packageVersion()}`)
      return 0
    }
    if (values.help || !command) {
      io.out(USAGE)
      return values.help ? 0 : 2
    }
    if (command === 'migrate' && !sub) return await migrate(io)
    if (command === 'projections' && sub === 'rebuild' && extra.length === 0) return await rebuild(io, arg)
    if (command === 'audit' && sub === 'verify' && !arg) return await auditVerify(io, values.stream)
    if (command === 'audit' && sub === 'replay' && !arg) return await auditReplay(io, values.stream, values.until)
    if (command === 'audit' && sub === 'export' && !arg) return await auditExport(io, values)
    if (command === 'tokens' && sub === 'import' && extra.length === 0) return await tokensImport(io, arg, values.format, { psk: values.psk, passwordStdin: !!values['password-stdin'] })
    if (command === 'tokens' && (sub === 'unlock' || sub === 'release' || sub === 'revoke') && extra.length === 0) return await tokensLifecycle(io, sub, arg, values.reason)
    if (command === 'tokens' && sub === 'request-software' && extra.length === 0) return await tokensRequestSoftware(io, arg, !!values.show)
    if (command === 'tokens' && sub === 'assign-remote' && extra.length === 0) return await tokensAssignRemote(io, arg, values)
    if (command === 'remote-services' && sub && extra.length === 0) return await remoteServices(io, sub, arg, values)
    if (command === 'users' && sub === 'grant' && extra.length === 0) return await usersGrant(io, arg, values.role)
    if (command === 'users' && (sub === 'reset-password' || sub === 'delete') && extra.length === 0) return await usersAccount(io, sub, arg, !!values.yes)
    if (command === 'users' && sub === 'add' && extra.length === 0) return await usersAdd(io, arg, values.name, !!values['password-stdin'], { email: values.email, phone: values.phone })
    if (command === 'keys' && sub === 'rotate' && !arg) return await keysRotate(io)
    if (command === 'keys' && sub === 'rotate-signing' && !arg) return await keysRotateSigning(io)
    if (command === 'clients' && sub === 'add' && extra.length === 0) {
      return await clientsAdd(io, arg, values['redirect-uri'] ?? [], !!values.public, values.name)
    }
    if (command === 'api-keys' && sub === 'create' && !arg) return await apiKeysCreate(io, values.role, values.name)
    if (command === 'api-keys' && sub === 'revoke' && extra.length === 0) return await apiKeysRevoke(io, arg)
    throw new CliError(`unknown command: tessera ${positionals.join(' ')}\n${USAGE}`)
  } catch (error) {
    const code = error instanceof CliError ? error.exitCode : 2
    io.err(`tessera: ${(error as Error).message}`)
    return code
  }
}
