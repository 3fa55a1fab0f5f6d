// What can go wrong with a token command, in the domain's words. None carries a seed or a code.

export class TokenError extends Error {
  override name = 'TokenError'
}

/** Unknown serial, or one that belongs to someone else: one error for both, so serials cannot be probed. */
export class SerialUnavailable extends TokenError {
  override name = 'SerialUnavailable'
  constructor() {
    super("We couldn't find that serial number, or it can't be added to your account.")
  }
}

export class SerialAlreadyInInventory extends TokenError {
  override name = 'SerialAlreadyInInventory'
  constructor(readonly serial: string) {
    super(`serial ${serial} is already in the inventory`)
  }
}

export class TokenAlreadyActivated extends TokenError {
  override name = 'TokenAlreadyActivated'
  constructor() {
    super('This hardware token is already activated on your account.')
  }
}

export class TokenNotClaimed extends TokenError {
  override name = 'TokenNotClaimed'
  constructor() {
    super('Enter the serial number on your token first.')
  }
}

/** The user's security policy does not allow this token (its kind of method or its number of digits). */
export class NotAllowedByPolicy extends TokenError {
  override name = 'NotAllowedByPolicy'
  constructor() {
    super("Your organization's security policy doesn't allow this token. Use another sign-in method or contact your administrator.")
  }
}

export class WrongCode extends TokenError {
  override name = 'WrongCode'
  constructor() {
    super("That code didn't work. Check the code on your token and try again.")
  }
}

export class TooManyAttempts extends TokenError {
  override name = 'TooManyAttempts'
  constructor() {
    super('Too many wrong codes. Ask your administrator to reset this token, or try another one.')
  }
}

export class InvalidTokenName extends TokenError {
  override name = 'InvalidTokenName'
  constructor() {
    super('Give your token a name of 1 to 64 characters.')
  }
}

export class TokenLocked extends TokenError {
  override name = 'TokenLocked'
  constructor(readonly until: Date) {
    super('This token is locked after too many wrong codes. Try again later, or ask your administrator to unlock it.')
  }
}

export class TokenNotLocked extends TokenError {
  override name = 'TokenNotLocked'
  constructor(readonly serial: string) {
    super(`token ${serial} is not locked`)
  }
}

export class TokenRevokedError extends TokenError {
  override name = 'TokenRevoked'
  constructor(readonly serial: string) {
    super(`token ${serial} is revoked; a revoked token cannot be used or changed`)
  }
}

export class UnknownSerial extends TokenError {
  override name = 'UnknownSerial'
  constructor(readonly serial: string) {
    super(`no token with serial ${serial} in the inventory`)
  }
}

/** An admin operation that does not fit the token's state (assign an assigned token, enable an enabled one...). */
export class WrongTokenState extends TokenError {
  override name = 'WrongTokenState'
}

export class TokenDisabledError extends TokenError {
  override name = 'TokenDisabled'
  constructor() {
    super('This token is disabled. Ask your administrator to enable it.')
  }
}

export class ResyncFailed extends TokenError {
  override name = 'ResyncFailed'
  constructor() {
    super('The two codes are not consecutive codes of this token (searched 1000 steps either way).')
  }
}

/** The remote service that checks this credential's codes gave no usable answer (a timeout, a refused connection). */
export class RemoteUnavailable extends TokenError {
  override name = 'RemoteUnavailable'
  constructor() {
    super("We couldn't check your code right now. Try again, or choose another way to verify.")
  }
}

/** The remote service failed again and again: the gateway stopped asking it for a short while. */
export class RemoteServicePaused extends TokenError {
  override name = 'RemoteServicePaused'
  constructor(readonly seconds: number) {
    const minutes = Math.ceil(seconds / 60)
    super(`The service that checks this code isn't answering, so we stopped asking it for ${seconds < 60 ? `${seconds} ${seconds === 1 ? 'second' : 'seconds'}` : `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`}. Try again then, or choose another way to verify.`)
  }
}
