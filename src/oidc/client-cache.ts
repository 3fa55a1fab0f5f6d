// Relying applications as the provider's storage keeps them in the process (adapter.ts), and the way a
// change made on this process reaches them at once (clientChanged, called by commands/clients.ts). No
// import of oidc-provider here: the CLI, which changes clients, must not load the provider.

/** How long a process keeps a relying application's metadata before reading it again. */
export const CLIENT_TTL_MS = 5000
/** Beyond this many cached applications the cache starts afresh (a bound, not an expected size). */
export const MAX_CACHED_CLIENTS = 10_000

type Cache = Map<string, { payload: unknown; until: number }>
const caches = new Set<Cache>()

/**
 * A cache of something read per relying application (its metadata, its name), kept CLIENT_TTL_MS and told of
 * changes by clientChanged.
 */
export function clientCache<T>() {
  const kept = new Map<string, { payload: T | undefined; until: number }>()
  caches.add(kept as Cache)
  return {
    /** What is kept for the application, or what `read` gives now (kept in turn). */
    async get(clientId: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
      const now = Date.now()
      const hit = kept.get(clientId)
      if (hit && hit.until > now) return hit.payload
      const payload = await read()
      if (kept.size >= MAX_CACHED_CLIENTS) kept.clear()
      kept.set(clientId, { payload, until: now + CLIENT_TTL_MS })
      return payload
    },
  }
}

/** A relying application changed (its redirect URIs, its secret) or went: this process reads it again at once. */
export function clientChanged(clientId: string): void {
  for (const cache of caches) cache.delete(clientId)
}
