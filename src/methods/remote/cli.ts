// `tessera remote-services …` and `tessera tokens assign-remote …`: remote services and credentials from the
// terminal, through the same commands as the API and the pages. Secrets come on standard input, never as
// arguments (which any user of the machine can read in the process list).
import { readFile } from 'node:fs/promises'
import type { Io } from '../../cli/commands.js'
import { CliError, openContext } from '../../cli/context.js'
import { TokenError } from '../../domain/token/errors.js'
import { findUserByUpn } from '../../read-models/users.js'
import { assignRemoteCredential } from './credentials.js'
import { RemoteServiceError } from './service.js'
import { configureRemoteService, listRemoteServices, removeRemoteService, testRemoteService, type RemoteServiceInput } from './services.js'

export const REMOTE_USAGE = `  remote-services list             the services that check remote credentials' codes
  remote-services add-vip ID --name NAME --url URL --pkcs12 FILE --password-stdin [--ca FILE]
                  [--timeout S] [--code-lifetime S]
                                   add or change a VIP service (SOAP over HTTPS, our client certificate
                                   from the PKCS#12 file; its password on standard input)
  remote-services add-radius ID --name NAME --server HOST[:PORT]... --secret-stdin [--timeout S]
                  [--retries N] [--code-lifetime S]
                                   add or change RADIUS servers, in failover order (shared secret on stdin)
  remote-services test ID          send a test request; exit 1 with what went wrong
  remote-services remove ID        remove a service no credential uses
  tokens assign-remote UPN --service ID --credential ID [--digits 6|8]
                                   give a user a credential the service checks, usable at once`

export interface RemoteCliValues {
  name?: string; url?: string; pkcs12?: string; ca?: string; timeout?: string; 'code-lifetime'?: string; server?: string[]
  retries?: string; 'password-stdin'?: boolean; 'secret-stdin'?: boolean; service?: string; credential?: string; digits?: string
}

async function withContext<T>(run: (ctx: Awaited<ReturnType<typeof openContext>>) => Promise<T>): Promise<T> {
  const ctx = await openContext()
  try {
    return await run(ctx)
  } catch (error) {
    if (error instanceof RemoteServiceError || error instanceof TokenError) throw new CliError(error.message, 1)
    throw error
  } finally {
    await ctx.close()
  }
}

export async function remoteServices(io: Io, sub: string, id: string | undefined, values: RemoteCliValues): Promise<number> {
  if (sub === 'list') {
    return withContext(async (ctx) => {
      const services = await listRemoteServices(ctx.db)
      if (services.length === 0) io.out('no remote service')
      for (const s of services) {
        const where = s.settings?.protocol === 'vip' ? `${s.settings.url} (client certificate ${s.settings.certificate.subject}, until ${s.settings.certificate.notAfter})`
          : s.settings?.servers.map((v) => `${v.host}:${v.port}`).join(', ')
        io.out(`${s.id}\t${s.settings?.protocol}\t${s.name}\t${where}\t${s.credentials} credentials`)
      }
      return 0
    })
  }
  if (!id) throw new CliError(`tessera remote-services ${sub} needs a service id`)
  if (sub === 'test') {
    return withContext(async (ctx) => {
      const result = await testRemoteService(ctx.commands(), id)
      ;(result.ok ? io.out : io.err)(result.message)
      return result.ok ? 0 : 1
    })
  }
  if (sub === 'remove') {
    return withContext(async (ctx) => {
      await removeRemoteService(ctx.commands(), { id }, ctx.meta())
      io.out(`removed remote service ${id}`)
      return 0
    })
  }
  if (sub !== 'add-vip' && sub !== 'add-radius') throw new CliError(`unknown command: tessera remote-services ${sub}`)
  if (!values.name) throw new CliError(`give the service a name: --name "Symantec VIP"`)
  const common = { id, name: values.name, timeoutSeconds: values.timeout as never, codeLifetimeSeconds: values['code-lifetime'] as never }
  let input: RemoteServiceInput
  if (sub === 'add-vip') {
    if (!values.url) throw new CliError('give the Validate URL: --url https://…')
    let pkcs12: Buffer | undefined
    if (values.pkcs12) {
      if (!values['password-stdin']) throw new CliError('give the PKCS#12 password on standard input with --password-stdin (never as an argument)')
      pkcs12 = await readFile(values.pkcs12).catch(() => { throw new CliError(`cannot read ${values.pkcs12}`) })
    }
    const passphrase = pkcs12 ? (await io.stdin()).replace(/\r?\n$/, '') : undefined
    // Without --ca the service keeps the CA it trusts (none: the system's roots).
    const caPem = values.ca ? await readFile(values.ca, 'utf8').catch(() => { throw new CliError(`cannot read ${values.ca}`) }) : undefined
    input = { ...common, protocol: 'vip', url: values.url, pkcs12, passphrase, caPem }
  } else {
    if (!values.server?.length) throw new CliError('give the servers in failover order: --server radius1.example.com:1812 --server radius2.example.com')
    const secret = values['secret-stdin'] ? (await io.stdin()).replace(/\r?\n$/, '') : undefined
    input = { ...common, protocol: 'radius', servers: values.server, secret, retries: values.retries as never }
  }
  return withContext(async (ctx) => {
    const service = await configureRemoteService(ctx.commands(), input, ctx.meta())
    io.out(`remote service ${service.id} saved (${service.settings?.protocol}, version ${service.version}, secrets ${service.secretFingerprint})`)
    return 0
  })
}

export async function tokensAssignRemote(io: Io, upn: string | undefined, values: RemoteCliValues): Promise<number> {
  if (!upn || !values.service || !values.credential) {
    throw new CliError('tessera tokens assign-remote needs a user, a service and a credential: tessera tokens assign-remote alice@example.com --service vip --credential VSMT12345678')
  }
  if (values.digits !== undefined && values.digits !== '6' && values.digits !== '8') throw new CliError('--digits is 6 or 8')
  return withContext(async (ctx) => {
    const user = await findUserByUpn(ctx.db, upn)
    if (!user) throw new CliError(`no user ${upn}`, 1)
    const token = await assignRemoteCredential(ctx.commands(), { userId: user.id, service: values.service!, credential: values.credential!, digits: values.digits === '8' ? 8 : 6 }, ctx.meta())
    io.out(`${user.upn} can sign in with remote credential ${token.serial} (${token.remoteCredential} at ${token.remoteService})`)
    return 0
  })
}
