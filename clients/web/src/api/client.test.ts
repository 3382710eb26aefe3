import { describe, expect, it } from 'vitest'
import { ApiClient, ApiError, type Locks, humanMessage, memoryEpoch, parseRetryAfter } from './client'

interface Call {
  url: string
  method: string
  headers: Record<string, string>
  body?: string
  credentials?: RequestCredentials
}

function json(status: number, v: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

function fakeFetch(handler: (c: Call) => Response | Promise<Response>): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = []
  const f = async (input: RequestInfo | URL, init?: RequestInit) => {
    const c: Call = {
      url: String(input),
      method: init?.method ?? 'GET',
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: init?.body as string | undefined,
      credentials: init?.credentials,
    }
    calls.push(c)
    return handler(c)
  }
  return { fetch: f as typeof fetch, calls }
}

const tokens = (n: number) => ({ access_token: `a${n}`, refresh_token: `r${n}`, token_type: 'Bearer', expires_in: 900, refresh_expires_in: 86400 })

async function caught(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError)
    return e as ApiError
  }
  throw new Error('no error')
}

describe('ApiClient errors', () => {
  it('maps the server error shape to a typed error with a human message', async () => {
    const { fetch } = fakeFetch(() => json(409, { error: { code: 'conflict', message: 'already exists' } }))
    const api = new ApiClient({ fetch, mode: 'body', locks: null })
    const e = await caught(api.post('/api/register', {}, { auth: false, messages: { conflict: 'That username is taken.' } }))
    expect(e.code).toBe('conflict')
    expect(e.status).toBe(409)
    expect(e.message).toBe('That username is taken.')
    expect(e.serverMessage).toBe('already exists')
  })

  it('tells a server name that leads nowhere (404 unknown_server) from a missing user (404 not_found)', async () => {
    const { fetch } = fakeFetch(() => json(404, { error: { code: 'unknown_server', message: 'there is no server typo.example' } }))
    const e = await caught(new ApiClient({ fetch, mode: 'body', locks: null }).get('/api/public_key/bob%40typo.example'))
    expect(e.code).toBe('unknown_server')
    expect(e.status).toBe(404)
    expect(e.message).toBe('There is no server with that name. Check the address.')
    expect(humanMessage('not_found')).not.toBe(e.message)
  })

  it('reads Retry-After on rate limiting', async () => {
    const { fetch } = fakeFetch(() => json(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '30' }))
    const e = await caught(new ApiClient({ fetch, mode: 'body', locks: null }).post('/api/login', {}, { auth: false }))
    expect(e.code).toBe('rate_limited')
    expect(e.retryAfter).toBe(30)
    expect(e.message).toBe('Too many attempts. Try again in 30 seconds.')
    expect(humanMessage('rate_limited', 120)).toBe('Too many attempts. Try again in 2 minutes.')
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', Date.parse('Thu, 01 Jan 2026 00:00:00 GMT'))).toBe(60)
    expect(parseRetryAfter(null)).toBeUndefined()
  })

  it('says when the network is down', async () => {
    const { fetch } = fakeFetch(() => {
      throw new TypeError('fetch failed')
    })
    const e = await caught(new ApiClient({ fetch, mode: 'body', locks: null }).get('/api/account'))
    expect(e.code).toBe('network')
    expect(e.status).toBe(0)
    expect(e.message).toMatch(/Cannot reach the server/)
  })

  it('maps server errors and bodies that are not the error shape by status', async () => {
    const { fetch } = fakeFetch(() => new Response('<html>bad gateway</html>', { status: 502 }))
    const e = await caught(new ApiClient({ fetch, mode: 'body', locks: null }).get('/api/account'))
    expect(e.code).toBe('internal')
    expect(e.message).toMatch(/server ran into a problem/)
    const { fetch: f2 } = fakeFetch(() => new Response('not json', { status: 200 }))
    await expect(new ApiClient({ fetch: f2, mode: 'body', locks: null }).get('/x')).rejects.toMatchObject({ code: 'bad_response' })
  })
})

describe('ApiClient sessions (body mode)', () => {
  it('sends the access token from memory and JSON bodies', async () => {
    const { fetch, calls } = fakeFetch(() => json(200, { ok: true }))
    const api = new ApiClient({ fetch, mode: 'body', locks: null })
    expect(api.hasSession).toBe(false)
    api.adoptTokens(tokens(1))
    expect(api.hasSession).toBe(true)
    expect(await api.post('/api/messages', { a: 1 })).toEqual({ ok: true })
    expect(calls[0].headers.Authorization).toBe('Bearer a1')
    expect(calls[0].headers['Content-Type']).toBe('application/json')
    expect(calls[0].body).toBe('{"a":1}')
    expect(calls[0].credentials).toBe('omit')
  })

  it('refreshes once on 401 and retries, sharing one refresh among concurrent callers', async () => {
    let refreshes = 0
    const { fetch, calls } = fakeFetch(async (c) => {
      if (c.url === '/api/refresh') {
        refreshes++
        expect(JSON.parse(c.body!)).toEqual({ refresh_token: 'r1' })
        await new Promise((r) => setTimeout(r, 5))
        return json(200, tokens(2))
      }
      return c.headers.Authorization === 'Bearer a2' ? json(200, { url: c.url }) : json(401, { error: { code: 'unauthenticated', message: 'x' } })
    })
    const api = new ApiClient({ fetch, mode: 'body', locks: null })
    api.adoptTokens(tokens(1))
    const got = await Promise.all([api.get('/a'), api.get('/b'), api.get('/c')])
    expect(got).toEqual([{ url: '/a' }, { url: '/b' }, { url: '/c' }])
    expect(refreshes).toBe(1)
    expect(calls.filter((c) => c.url === '/api/refresh')).toHaveLength(1)
  })

  it('ends the session when the refresh is refused', async () => {
    let ended = 0
    const { fetch } = fakeFetch((c) =>
      c.url === '/api/refresh' ? json(401, { error: { code: 'unauthenticated', message: 'reused' } }) : json(401, { error: { code: 'unauthenticated', message: 'x' } }),
    )
    const api = new ApiClient({ fetch, mode: 'body', locks: null, onSessionEnded: () => ended++ })
    api.adoptTokens(tokens(1))
    const e = await caught(api.get('/api/account'))
    expect(e.code).toBe('session_ended')
    expect(e.message).toBe('Your session has ended. Log in again.')
    expect(ended).toBe(1)
    expect(api.hasSession).toBe(false)
  })

  it('does not refresh without a session', async () => {
    const { fetch, calls } = fakeFetch(() => json(401, { error: { code: 'unauthenticated', message: 'wrong' } }))
    const api = new ApiClient({ fetch, mode: 'body', locks: null })
    const e = await caught(api.post('/api/login', {}, { auth: false, messages: { unauthenticated: 'Wrong username or password.' } }))
    expect(e.message).toBe('Wrong username or password.')
    expect(calls).toHaveLength(1)
  })
})

describe('ApiClient sessions (cookie mode, several tabs)', () => {
  // A server whose refresh cookie rotates and whose reuse detection ends the session.
  function cookieServer() {
    let gen = 1
    let revoked = false
    let refreshes = 0
    const jar = { access: 1, refresh: 1 }
    const { fetch, calls } = fakeFetch(async (c) => {
      if (c.url === '/api/refresh') {
        refreshes++
        expect(c.headers['X-CSRF-Token']).toBe('csrf')
        expect(JSON.parse(c.body!)).toEqual({ use_cookies: true })
        const presented = jar.refresh
        await new Promise((r) => setTimeout(r, 5))
        if (revoked || presented !== gen) {
          revoked = true
          return json(401, { error: { code: 'unauthenticated', message: 'reused' } })
        }
        gen++
        jar.refresh = gen
        jar.access = gen
        return json(200, { csrf_token: 'csrf', token_type: 'Bearer', expires_in: 900, refresh_expires_in: 86400 })
      }
      if (c.method !== 'GET') expect(c.headers['X-CSRF-Token']).toBe('csrf')
      expect(c.headers.Authorization).toBeUndefined()
      expect(c.credentials).toBe('include')
      return jar.access === gen && gen > 1 ? json(200, { ok: c.url }) : json(401, { error: { code: 'unauthenticated', message: 'expired' } })
    })
    return { fetch, calls, refreshes: () => refreshes, revoked: () => revoked }
  }

  // Web Locks across tabs: one exclusive holder at a time.
  function sharedLocks(): Locks {
    let tail: Promise<unknown> = Promise.resolve()
    return {
      request<T>(_name: string, cb: () => Promise<T>): Promise<T> {
        const run = tail.then(cb, cb)
        tail = run.catch(() => undefined)
        return run
      },
    }
  }

  it('two tabs refresh once between them: the second reuses the first one’s refresh', async () => {
    const s = cookieServer()
    const epoch = memoryEpoch() // stands for localStorage shared by the tabs
    const locks = sharedLocks()
    const tab1 = new ApiClient({ fetch: s.fetch, mode: 'cookie', locks, epoch, csrfCookie: () => 'csrf' })
    const tab2 = new ApiClient({ fetch: s.fetch, mode: 'cookie', locks, epoch, csrfCookie: () => 'csrf' })
    expect(tab1.hasSession).toBe(true)
    const got = await Promise.all([tab1.post('/api/messages', {}), tab2.get('/api/account')])
    expect(got).toEqual([{ ok: '/api/messages' }, { ok: '/api/account' }])
    expect(s.refreshes()).toBe(1)
    expect(s.revoked()).toBe(false)
  })

  it('without the lock the same two tabs would trip reuse detection (the hazard the lock avoids)', async () => {
    const s = cookieServer()
    const mk = () => new ApiClient({ fetch: s.fetch, mode: 'cookie', locks: null, csrfCookie: () => 'csrf' })
    const results = await Promise.allSettled([mk().get('/a'), mk().get('/b')])
    expect(s.revoked()).toBe(true)
    expect(results.some((r) => r.status === 'rejected')).toBe(true)
  })

  it('adopts the csrf token of a cookie-mode login and refuses an answer without it', () => {
    const api = new ApiClient({ fetch: fakeFetch(() => json(200, {})).fetch, mode: 'cookie', locks: null, csrfCookie: () => undefined })
    expect(api.hasSession).toBe(false)
    expect(() => api.adoptTokens({ token_type: 'Bearer', expires_in: 1, refresh_expires_in: 1 })).toThrow(ApiError)
    api.adoptTokens({ csrf_token: 't', token_type: 'Bearer', expires_in: 1, refresh_expires_in: 1 })
    expect(api.hasSession).toBe(true)
  })
})
