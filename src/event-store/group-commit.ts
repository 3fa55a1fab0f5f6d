// Group commit: writes submitted in the same tick of the event loop go to the database together, one
// statement, one round trip, one WAL flush. A key (a stream, a token) appears once per group; a second
// write to it waits for the next group. If the group is refused (one write's expected version was
// wrong), each write is tried alone, so every caller gets its own answer.
export class GroupCommit<Write, Result> {
  private pending: { write: Write; resolve: (r: Result) => void; reject: (e: unknown) => void }[] = []

  constructor(
    private readonly keyOf: (write: Write) => string,
    /** Writes a group all or nothing, one result per write, in order. */
    private readonly writeGroup: (writes: Write[]) => Promise<Result[]>,
    /** Called after each successful group (outside the write's error handling). */
    private readonly committed: () => void = () => {},
  ) {}

  submit(write: Write): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject })
      if (this.pending.length === 1) setImmediate(() => void this.flush())
    })
  }

  private async flush(): Promise<void> {
    const group: typeof this.pending = []
    const rest: typeof this.pending = []
    const keys = new Set<string>()
    for (const p of this.pending) {
      const key = this.keyOf(p.write)
      if (keys.has(key)) rest.push(p)
      else {
        keys.add(key)
        group.push(p)
      }
    }
    this.pending = rest
    if (rest.length > 0) setImmediate(() => void this.flush())
    let results: Result[]
    try {
      results = await this.writeGroup(group.map((p) => p.write))
    } catch (error) {
      if (group.length === 1) return group[0]!.reject(error)
      await Promise.all(group.map(async (p) => {
        let alone: Result[]
        try {
          alone = await this.writeGroup([p.write])
        } catch (e) {
          return p.reject(e)
        }
        this.committed()
        p.resolve(alone[0]!)
      }))
      return
    }
    this.committed()
    group.forEach((p, i) => p.resolve(results[i]!))
  }
}
