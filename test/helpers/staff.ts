// An admin as the admin-page tests need one: a user with the admin role and an active token (the RFC 4226
// seed), and a browser signed in and verified with a code from it, the clock moved to a fresh time step.
import type { FastifyInstance } from 'fastify'
import { activateToken } from '../../src/commands/tokens.js'
import { grantRole } from '../../src/commands/users.js'
import { SEED_B32, SEED_HEX } from '../fixtures/rfc-vectors.js'
import { addUser, Browser, importEntra } from './app.js'
import { metadata } from './database.js'
import { totpAt } from './oathtool.js'

export async function addAdmin(app: FastifyInstance, clock: { now: Date }, upn = 'ada@example.com', serial = 'AD-1', displayName?: string) {
  const user = await addUser(app, upn, 'correct horse battery', displayName)
  await grantRole(app.commands, upn, 'admin', metadata())
  await importEntra(app, [`${upn},${serial},${SEED_B32},30,Token2,C202`])
  await activateToken(app.commands, { serial, userId: user.userId, name: 'Admin key', code: totpAt(SEED_HEX, Math.floor(clock.now.getTime() / 1000)) }, metadata())
  return user
}

export async function signedInAdmin(app: FastifyInstance, clock: { now: Date }, upn = 'ada@example.com'): Promise<Browser> {
  const b = new Browser(app)
  await b.signIn(upn)
  clock.now = new Date(clock.now.getTime() + 30_000)
  await b.get('/security-info/verify')
  const verified = await b.post('/security-info/verify', { code: totpAt(SEED_HEX, Math.floor(clock.now.getTime() / 1000)) })
  if (verified.status !== 303) throw new Error(`${upn} could not verify with a code (${verified.status})`)
  return b
}
