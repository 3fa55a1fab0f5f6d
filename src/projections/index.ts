// Every projection of the gateway, by kind.
import { auditIndexProjection } from './audit-index.js'
import { clientsProjection } from './clients.js'
import { eventTypeStatsProjection } from './event-type-stats.js'
import { policiesProjection } from './policies.js'
import { remoteServicesProjection } from '../methods/remote/projection.js'
import { streamsProjection } from './streams.js'
import { tokensProjection } from './tokens.js'
import { usersProjection } from './users.js'
import type { Projection } from './types.js'

export const inlineProjections: readonly Projection[] = [streamsProjection, tokensProjection, usersProjection, clientsProjection, policiesProjection, remoteServicesProjection]
export const catchUpProjections: readonly Projection[] = [auditIndexProjection, eventTypeStatsProjection]
export const allProjections: readonly Projection[] = [...inlineProjections, ...catchUpProjections]

export function projectionNamed(name: string): Projection | undefined {
  return allProjections.find((p) => p.name === name)
}
