// A user agent over real HTTP: a cookie jar, manual redirects, forms with their CSRF token.
export interface Response {
  status: number
  location: string | null
  body: string
  headers: Headers
  url: string
}

/** Cookies are kept per host name (not port), as a browser keeps them. */
export class Agent {
  private jars = new Map<string, Map<string, string>>()
  private csrf = ''

  constructor(readonly base: string) {}

  private absolute(url: string): string {
    return new URL(url, this.base).toString()
  }

  private jar(url: string): Map<string, string> {
    const host = new URL(url).hostname
    let jar = this.jars.get(host)
    if (!jar) this.jars.set(host, (jar = new Map()))
    return jar
  }

  private store(url: string, headers: Headers) {
    const jar = this.jar(url)
    for (const c of headers.getSetCookie()) {
      const [pair] = c.split(';')
      const i = pair!.indexOf('=')
      const name = pair!.slice(0, i)
      if (/expires=Thu, 01 Jan 1970/i.test(c) || /max-age=0/i.test(c)) jar.delete(name)
      else jar.set(name, pair!.slice(i + 1))
    }
  }

  /** Another user agent holding copies of this one's cookies (a stolen or copied cookie). */
  copy(): Agent {
    const other = new Agent(this.base)
    for (const [host, jar] of this.jars) other.jars.set(host, new Map(jar))
    return other
  }

  /** Forgets the cookies whose name matches, on every host (e.g. the provider's session, keeping the gateway's). */
  forget(name: RegExp): void {
    for (const jar of this.jars.values()) for (const key of [...jar.keys()]) if (name.test(key)) jar.delete(key)
  }

  async request(method: string, url: string, form?: Record<string, string>, options: { csrf?: boolean } = {}): Promise<Response> {
    const target = this.absolute(url)
    const headers: Record<string, string> = { accept: 'text/html', cookie: [...this.jar(target)].map(([k, v]) => `${k}=${v}`).join('; ') }
    let body: string | undefined
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams({ ...(options.csrf === false ? {} : { _csrf: this.csrf }), ...form }).toString()
    }
    const res = await fetch(target, { method, headers, body, redirect: 'manual' })
    this.store(target, res.headers)
    const text = await res.text()
    const token = text.match(/name="_csrf" value="([^"]+)"/)
    if (token) this.csrf = token[1]!
    const location = res.headers.get('location')
    return { status: res.status, location: location ? new URL(location, target).toString() : null, body: text, headers: res.headers, url: target }
  }

  get(url: string) {
    return this.request('GET', url)
  }

  post(url: string, form: Record<string, string>, options: { csrf?: boolean } = {}) {
    return this.request('POST', url, form, options)
  }

  /** Follows redirects until one leaves this site (the relying application's callback) or a page answers. */
  async follow(res: Response, stopAt?: string): Promise<Response> {
    let current = res
    for (let i = 0; i < 20 && current.location; i++) {
      if (stopAt && current.location.startsWith(stopAt)) return current
      current = await this.get(current.location)
    }
    return current
  }
}
