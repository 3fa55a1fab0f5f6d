// A browser over real HTTP (node:http): a cookie jar, manual redirects, forms with their CSRF token, like
// test/helpers/http-agent.ts, plus a source address. Each Browser has its own keep-alive connection(s),
// closed with close(); with `localAddress` (any 127.x.y.z on Linux's loopback) the gateway sees the
// connection come from that address, as it would see distinct clients.
import http from 'node:http'

export interface Response {
  status: number
  location: string | null
  body: string
  url: string
}

export class Browser {
  private jar = new Map<string, string>()
  private csrf = ''
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  /** Requests this browser sent. */
  requests = 0

  constructor(readonly base: string, private readonly localAddress?: string) {}

  private store(setCookie: string[] | undefined) {
    for (const c of setCookie ?? []) {
      const [pair] = c.split(';')
      const i = pair!.indexOf('=')
      const name = pair!.slice(0, i)
      if (/expires=Thu, 01 Jan 1970/i.test(c) || /max-age=0/i.test(c)) this.jar.delete(name)
      else this.jar.set(name, pair!.slice(i + 1))
    }
  }

  request(method: string, url: string, form?: Record<string, string>): Promise<Response> {
    const target = new URL(url, this.base)
    this.requests++
    const headers: Record<string, string> = { accept: 'text/html' }
    if (this.jar.size > 0) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ')
    let body: string | undefined
    if (form) {
      body = new URLSearchParams({ _csrf: this.csrf, ...form }).toString()
      headers['content-type'] = 'application/x-www-form-urlencoded'
      headers['content-length'] = String(Buffer.byteLength(body))
    }
    return new Promise<Response>((resolve, reject) => {
      const req = http.request(target, { method, headers, agent: this.agent, localAddress: this.localAddress }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          this.store(res.headers['set-cookie'])
          const text = Buffer.concat(chunks).toString('utf8')
          const token = text.match(/name="_csrf" value="([^"]+)"/)
          if (token) this.csrf = token[1]!
          const location = res.headers.location
          resolve({ status: res.statusCode ?? 0, location: location ? new URL(location, target).toString() : null, body: text, url: target.toString() })
        })
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  get(url: string): Promise<Response> {
    return this.request('GET', url)
  }

  post(url: string, form: Record<string, string>): Promise<Response> {
    return this.request('POST', url, form)
  }

  /** Follows redirects until one leaves for `stopAt` (the relying application's callback) or a page answers. */
  async follow(res: Response, stopAt?: string): Promise<Response> {
    let current = res
    for (let i = 0; i < 20 && current.location; i++) {
      if (stopAt && current.location.startsWith(stopAt)) return current
      current = await this.get(current.location)
    }
    return current
  }

  /** Forgets the cookies whose name matches (e.g. one service's session, keeping another's). */
  forget(name: RegExp): void {
    for (const key of [...this.jar.keys()]) if (name.test(key)) this.jar.delete(key)
  }

  /** Closes the browser's connections. */
  close(): void {
    this.agent.destroy()
  }
}
