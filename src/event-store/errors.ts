// Typed failures of the event store. None carries event data, so none can leak a secret.

export class EventStoreError extends Error {
  override name = 'EventStoreError'
}

/** The stream was not at the version the writer expected: someone else wrote first. */
export class WrongExpectedVersion extends EventStoreError {
  override name = 'WrongExpectedVersion'
  constructor(
    readonly streamId: string,
    readonly expected: number | 'no-stream' | 'any',
    readonly actual: number | null,
  ) {
    super(`stream ${streamId} is at version ${actual ?? 'unknown'}, the writer expected ${expected}`)
  }
}

export class StreamNotFound extends EventStoreError {
  override name = 'StreamNotFound'
  constructor(readonly streamId: string) {
    super(`stream ${streamId} does not exist`)
  }
}

export class EventTooLarge extends EventStoreError {
  override name = 'EventTooLarge'
  constructor(
    readonly type: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`event ${type} is ${bytes} bytes, over the limit of ${limit}`)
  }
}

export class InvalidMetadata extends EventStoreError {
  override name = 'InvalidMetadata'
  constructor(readonly field: string, reason: string) {
    super(`event metadata ${field} ${reason}`)
  }
}

export class InvalidEvent extends EventStoreError {
  override name = 'InvalidEvent'
}

export class InvalidStreamId extends EventStoreError {
  override name = 'InvalidStreamId'
  constructor(readonly streamId: unknown) {
    super(`stream id must be 1 to 200 printable characters without spaces, like token-8659623756140`)
  }
}
