// One plain-language line per event, for auditors: who did what to which token or account.
// Names come from `names` (user id -> user principal name); nothing secret is ever in an event.

export interface DescribedEvent {
  type: string
  streamId: string
  data: Record<string, unknown>
  metadata: { actor: { type: string; id: string }; relyingApplication?: string | null }
}

export function describe(e: DescribedEvent, names: ReadonlyMap<string, string>): string {
  const d = e.data as Record<string, any>
  const who = (id: unknown) => (typeof id === 'string' ? names.get(id) ?? id : 'someone')
  const actor = e.metadata.actor.type === 'user' ? who(e.metadata.actor.id)
    : e.metadata.actor.type === 'admin' ? `admin ${e.metadata.actor.id}` : `${e.metadata.actor.type} ${e.metadata.actor.id}`
  const serial = String(d.serial ?? e.streamId.replace(/^token-/, ''))
  // A phone, e-mail or software method's serial says which it is; every other token is a hardware one.
  const token = serial.startsWith('PHONE-') ? `phone ${serial}` : serial.startsWith('EMAIL-') ? `email method ${serial}`
    : serial.startsWith('APP-') ? `software token ${serial}` : serial.startsWith('REMOTE-') ? `remote credential ${serial}` : `hardware token ${serial}`
  const app = d.relyingApplication ?? e.metadata.relyingApplication
  switch (e.type) {
    case 'TokenImported':
      return `${actor} imported ${token} (${[d.manufacturer, d.model].filter(Boolean).join(' ') || 'no model'}, ${String(d.kind).toUpperCase()} ${d.algorithm} ${d.digits} digits${d.period ? `, ${d.period} s` : ''}) from ${d.source}`
    case 'TokenAssigned':
      return d.by === 'self' ? `${who(d.userId)} claimed ${token}` : `${actor} assigned ${token} to ${who(d.userId)}`
    case 'TokenUnassigned':
      return d.by === 'self' ? `${who(d.userId)} removed ${token} from their sign-in methods`
        : `${actor} unassigned ${token} from ${who(d.userId)}${d.held ? ', held until an admin releases it' : ''}`
    case 'TokenReleased':
      return `${actor} released ${token} to the inventory`
    case 'SignInMethodAdded':
      return `${d.by === 'admin' ? `${actor} added` : d.by === 'backfill' ? 'recorded an earlier' : `${who(d.userId)} added`} sign-in method ${d.serial}${d.by === 'admin' ? ` for ${who(d.userId)}` : ''}`
    case 'SignInMethodRemoved':
      return `${d.by === 'admin' ? `${actor} removed` : `${who(d.userId)} removed`} sign-in method ${d.serial}${d.by === 'admin' ? ` from ${who(d.userId)}` : ''}`
    case 'UserDisabled':
      return `${actor} disabled the account of ${who(d.userId)}`
    case 'UserPasswordReset':
      return `${actor} reset the password of ${who(d.userId)} (a temporary one, until ${d.expiresAt})`
    case 'UserContactChanged':
      return `${actor} set how ${who(d.userId)} is reached: email ${d.email ?? 'none'}, mobile ${d.mobile ?? 'none'}`
    case 'UserDeleted':
      return `${actor} deleted the account of ${d.upn}`
    case 'UserEnabled':
      return `${actor} enabled the account of ${who(d.userId)}`
    case 'UserRoleRevoked':
      return `${actor} took the ${d.role} role from ${who(d.userId)}`
    case 'DefaultMethodChosen':
      return `${who(d.userId)} made ${d.serial} their default sign-in method`
    case 'UserSignInFailed':
      return `a wrong password was entered for ${who(d.userId)} (${d.failures} in a row)`
    case 'TokenRenamed':
      return `${actor} named ${token} '${d.name}'`
    case 'TokenActivated':
      return `${who(d.userId)} activated ${token} (time step ${d.step}, drift ${d.drift})`
    case 'TokenActivationFailed':
      return `${who(d.userId)} entered a ${d.reason === 'replayed' ? 'used' : 'wrong'} code while activating ${token}`
    case 'OtpVerified':
      return d.remote
        ? `${who(d.userId)} proved possession of ${token}${app ? ` for ${app}` : ''}: its service accepted the code (${d.remote})`
        : `${who(d.userId)} proved possession of ${token}${app ? ` for ${app}` : ''} (time step ${d.step}, drift ${d.drift})`
    case 'OtpRejected':
      return `${who(d.userId)} was refused by ${token}: ${({ locked: 'the token is locked', disabled: 'the token is disabled', replayed: 'a code already used', 'not-allowed': 'their security policy does not allow it', unavailable: 'its service could not check the code' } as Record<string, string>)[d.reason] ?? 'a wrong code'}${d.remote ? ` [${d.remote}]` : ''}${app ? ` (${app})` : ''}`
    case 'RemoteCredentialAssigned':
      return `${actor} gave ${who(d.userId)} remote credential ${token}: ${d.credential} at service ${d.service}`
    case 'RemoteServiceConfigured':
      return `${actor} configured remote service ${d.id} ('${d.name}', ${d.settings.protocol}${d.settings.protocol === 'vip' ? ` ${d.settings.url}, client certificate ${d.settings.certificate.subject} until ${d.settings.certificate.notAfter}` : ` ${d.settings.servers.map((s: { host: string; port: number }) => `${s.host}:${s.port}`).join(', ')}`}; secrets ${d.secretFingerprint})`
    case 'RemoteServiceRemoved':
      return `${actor} removed remote service ${d.id}`
    case 'TokenLocked':
      return `${token} locked after ${d.failures} wrong codes, until ${d.until}`
    case 'TokenUnlocked':
      return `${actor} unlocked ${token}`
    case 'SoftwareTokenCreated':
      return `${who(d.userId)} set up ${token} in an authenticator app (TOTP ${d.algorithm} ${d.digits} digits, ${d.period} s)${d.activationCode ? ` with activation code ${d.activationCode}` : ''}`
    case 'ActivationCodeRequested':
      return d.by === 'self' ? `${who(d.userId)} requested a software token (activation code ${d.code})` : `${actor} requested a software token for ${who(d.userId)} (activation code ${d.code})`
    case 'ActivationCodeIssued':
      return `activation code ${d.code} for ${who(d.userId)} was ${d.delivery === 'email' ? `sent by email to ${d.to}` : 'shown once to whoever asked'}, valid until ${d.expiresAt}`
    case 'ActivationCodeRedeemed':
      return `${who(d.userId)} redeemed activation code ${d.code} with their password; a key was made for software token ${d.serial}`
    case 'ActivationCodeExpired':
      return `activation code ${d.code} for ${who(d.userId)} ${({ expired: 'expired unused', replaced: 'was replaced by a newer one', 'account-deleted': 'ended with the account', 'account-disabled': 'ended: the account was disabled', 'password-reset': 'ended: the password was reset', 'method-removed': 'ended: a sign-in method was removed', revoked: `was revoked by ${actor}` } as Record<string, string>)[d.reason] ?? 'ended'}`
    case 'TokenRegistered':
      return `${d.by === 'self' ? who(d.userId) : actor} registered ${token} (${d.destination}) for ${who(d.userId)}, waiting for its first code`
    case 'ChallengeIssued':
      return `a code (challenge ${d.challenge}) was made for ${token} (${d.destination})${app ? ` for ${app}` : ''}, valid until ${d.expiresAt}`
    case 'DeliveryAttempted':
      return d.result === 'accepted'
        ? `${d.provider} took the message of challenge ${d.challenge} for ${token}${d.messageId ? ` (message ${d.messageId})` : ''}`
        : `${d.provider} ${d.result === 'refused' ? 'refused' : 'did not answer for'} the message of challenge ${d.challenge} for ${token}${d.error ? `: ${d.error}` : ''}`
    case 'CodeDelivered':
      return `${d.provider} reported the message of challenge ${d.challenge} for ${token} delivered`
    case 'ChallengeUndelivered':
      return `the message of challenge ${d.challenge} for ${token} was not sent: ${d.reason === 'expired' ? 'the code expired first' : 'no provider took it'}`
    case 'TokenDisabled':
      return `${actor} disabled ${token}`
    case 'TokenEnabled':
      return `${actor} enabled ${token}`
    case 'TokenResynced':
      return `${actor} resynchronised ${token} (time step ${d.step}, drift ${d.drift})`
    case 'TokenRevoked':
      return `${actor} revoked ${token} (${d.reason})`
    case 'TokenSecretDestroyed':
      return `the seed of ${token} was destroyed`
    case 'UserRegistered':
      return `${actor} added user ${d.upn} (${d.displayName})`
    case 'UserPasswordSet':
      return `${actor} set the password of ${who(d.userId)}`
    case 'UserSignedIn':
      return `${who(d.userId)} signed in with ${({ pwd: 'a password', otp: 'a code', fed: 'an upstream provider' } as Record<string, string>)[d.method] ?? d.method}${app ? ` to ${app}` : ''}`
    case 'UserLinkedToUpstream':
      return `${who(d.userId)} was linked to ${d.subject} at ${d.issuer}`
    case 'UserRoleGranted':
      return `${actor} made ${who(d.userId)} ${d.role}`
    case 'TemporaryCodeIssued':
      return `${actor} issued a ${d.oneTime ? 'one-time' : 'reusable'} temporary code to ${who(d.userId)}, valid until ${d.expiresAt}`
    case 'TemporaryCodeUsed':
      return `${who(d.userId)} signed in with a temporary code${app ? ` to ${app}` : ''}`
    case 'UserAddedToGroup':
      return `${actor} added ${who(d.userId)} to group ${d.group}`
    case 'UserRemovedFromGroup':
      return `${actor} removed ${who(d.userId)} from group ${d.group}`
    case 'PolicyCreated':
    case 'PolicyChanged': {
      const s = d.settings ?? {}
      return `${actor} ${e.type === 'PolicyCreated' ? 'created' : 'changed'} security policy ${d.policyId} '${d.name}' (methods ${(s.methods ?? []).join(', ')}; `
        + `${(s.digits ?? []).join(' or ')} digits; window ${s.totpWindow}; lock after ${s.lockThreshold} failures for ${s.lockSeconds} s; `
        + `${s.maxMethods} methods at most; temporary codes up to ${s.temporaryCodeMaxDays} days`
        + `${s.activationCodeDays ? `; activation codes ${s.activationCodeDays} days${s.userRequestsSoftwareTokens ? ', users may request them' : ''}` : ''})`
    }
    case 'PolicyAssigned':
    case 'PolicyUnassigned': {
      const target = d.target?.kind === 'user' ? who(d.target.id) : `group ${d.target?.id}`
      return e.type === 'PolicyAssigned' ? `${actor} assigned security policy ${d.policyId} to ${target}` : `${actor} removed security policy ${d.policyId} from ${target}`
    }
    case 'PolicyDeleted':
      return `${actor} deleted security policy ${d.policyId}`
    case 'ClientChanged':
      return `${actor} changed relying application ${d.clientId} (${d.name}; ${(d.redirectUris ?? []).join(', ')})`
    case 'ClientSecretRotated':
      return `${actor} gave relying application ${d.clientId} a new secret`
    case 'ClientDeleted':
      return `${actor} deleted relying application ${d.clientId}`
    case 'ClientRegistered':
      return `${actor} registered relying application ${d.clientId} (${d.name})`
    case 'ApiKeyCreated':
      return `${actor} created an ${d.role} API key ${d.id} (${d.name})`
    case 'ApiKeyRevoked':
      return `${actor} revoked API key ${d.id}`
    default:
      return `${e.type} on ${e.streamId}`
  }
}
