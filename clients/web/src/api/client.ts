// A small typed client of the homeserver's REST API (spec/openapi.yaml).
//
// Sessions come in the server's two forms (clientapi/auth.go):
//  - 'cookie' (the browser default): login and refresh send use_cookies; the
//    server keeps the access and refresh tokens in HttpOnly cookies that
//    script cannot read, and answers a csrf_token, sent back as
//    X-CSRF-Token on every state-changing request and on refresh.
//  - 'body': the tokens come in the JSON body and are kept in memory only
//    (this object's private fields), never in storage.
//
// A refresh token is single use and the server revokes the whole session
// when one is presented twice, so refreshes are serialised: within a tab by
// one shared promise, across tabs by the Web Locks API when present. A
// refresh epoch (a counter, no secret) says whether another caller refreshed
// after a request was sent; then the request is retried without a refresh.

/** Error codes of the server's `{"error":{"code","message"}}` body, and the client's own. */
export type ApiErrorCode =
  | 'invalid_request' | 'unauthenticated' | 'forbidden' | 'not_found' | 'conflict' | 'too_large'
  | 'rate_limited' | 'unavailable' | 'internal' | 'unsupported_media_type' | 'method_not_allowed'
  | 'csrf_failed' | 'wrong_password' | 'precondition_failed' | 'precondition_required'
  /** a file of another homeserver that cannot be fetched from it now (502) */
  | 'origin_unreachable'
  /** a message lists a file the server no longer has for the sender (400) */
  | 'unknown_file'
  /** an address's server name leads to no server: no such name, or no server document there (404) */
  | 'unknown_server'
  /** the request did not reach the server (offline, DNS, connection refused) */
  | 'network'
  /** the server answered something this client cannot read */
  | 'bad_response'
  /** a refresh failed: the session is over and the user must log in again */
  | 'session_ended'

const knownCodes = new Set<string>([
  'invalid_request', 'unauthenticated', 'forbidden', 'not_found', 'conflict', 'too_large', 'rate_limited',
  'unavailable', 'internal', 'unsupported_media_type', 'method_not_allowed', 'csrf_failed', 'wrong_password',
  'precondition_failed', 'precondition_required', 'origin_unreachable', 'unknown_file', 'unknown_server',
])

function codeForStatus(status: number): ApiErrorCode {
  switch (status) {
    case 400: return 'invalid_request'
    case 401: return 'unauthenticated'
    case 403: return 'forbidden'
    case 404: return 'not_found'
    case 409: return 'conflict'
    case 412: return 'precondition_failed'
    case 413: return 'too_large'
    case 428: return 'precondition_required'
    case 429: return 'rate_limited'
    case 503: return 'unavailable'
    default: return status >= 500 ? 'internal' : 'bad_response'
  }
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`
}

function waitText(seconds: number | undefined): string {
  if (seconds === undefined) return 'in a moment'
  if (seconds < 60) return `in ${plural(seconds, 'second')}`
  return `in ${plural(Math.ceil(seconds / 60), 'minute')}`
}

/** The human message for a code, as the UI shows it. */
export function humanMessage(code: ApiErrorCode, retryAfter?: number): string {
  switch (code) {
    case 'unauthenticated': return 'You are not logged in. Log in again.'
    case 'session_ended': return 'Your session has ended. Log in again.'
    case 'wrong_password': return 'The password is wrong.'
    case 'conflict': return 'That already exists.'
    case 'rate_limited': return `Too many attempts. Try again ${waitText(retryAfter)}.`
    case 'network': return 'Cannot reach the server. Check your connection and try again.'
    case 'unavailable': return `The server is busy or down for maintenance. Try again ${waitText(retryAfter)}.`
    case 'internal': return 'The server ran into a problem. Try again in a moment.'
    case 'bad_response': return 'The server sent an answer this app does not understand.'
    case 'too_large': return 'That is too large to send.'
    case 'not_found': return 'Not found.'
    case 'forbidden': return 'That is not allowed.'
    case 'csrf_failed': return 'Your session could not be checked. Reload the page and try again.'
    case 'precondition_failed': return 'Someone else changed this at the same time. Try again.'
    case 'origin_unreachable': return "The sender's server cannot be reached right now. Try again later."
    case 'unknown_file': return 'An attachment is no longer on the server. Attach it again.'
    case 'unknown_server': return 'There is no server with that name. Check the address.'
    default: return 'The request was refused. Check what you entered and try again.'
  }
}

/** A failed request. `message` is for people; `serverMessage` is the server's own text, for logs. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    readonly status: number, // 0 when the server was not reached
    message: string,
    readonly serverMessage = '',
    /** seconds, from Retry-After */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

/** Retry-After as whole seconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null || v.trim() === '') return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim())
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.max(0, Math.ceil((t - now) / 1000))
}

/** The token part of login and refresh answers. */
export interface TokenResponse {
  access_token?: string
  refresh_token?: string
  csrf_token?: string
  token_type: string
  expires_in: number
  refresh_expires_in: number
}

/** The refresh epoch shared by the tabs of one origin (a counter, no secret). */
export interface EpochStore {
  get(): number
  bump(): void
}

export function memoryEpoch(): EpochStore {
  let n = 0
  return { get: () => n, bump: () => void n++ }
}

export function localStorageEpoch(key = 'privateline.refresh_epoch'): EpochStore {
  return {
    get: () => Number(globalThis.localStorage.getItem(key) ?? '0') || 0,
    bump: () => globalThis.localStorage.setItem(key, String((Number(globalThis.localStorage.getItem(key) ?? '0') || 0) + 1)),
  }
}

/** The part of the Web Locks API used here. */
export interface Locks {
  request<T>(name: string, cb: () => Promise<T>): Promise<T>
}

export interface ApiClientOptions {
  /** '' (same origin) by default */
  baseUrl?: string
  fetch?: typeof globalThis.fetch
  mode?: 'cookie' | 'body'
  /** navigator.locks by default when present; null: in-tab serialisation only */
  locks?: Locks | null
  epoch?: EpochStore
  /** reads the CSRF cookie after a reload (cookie mode); document.cookie by default */
  csrfCookie?: () => string | undefined
  /** called once when a refresh fails and the session is over */
  onSessionEnded?: () => void
}

export interface RequestOptions {
  body?: unknown
  /** raw JSON text for the body, sent as is (for byte-exact canonical members) */
  rawBody?: string
  /** a binary body, sent as application/octet-stream (POST /api/files) */
  bytes?: Uint8Array
  /** sends the session's credentials and refreshes once on 401; true by default */
  auth?: boolean
  headers?: Record<string, string>
  /** overrides of the human message by code, for this request's context */
  messages?: Partial<Record<ApiErrorCode, string>>
  signal?: AbortSignal
}

export interface ApiResponse<T> {
  status: number
  data: T
  headers: Headers
}

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS'])

function readCsrfCookie(): string | undefined {
  const c = (globalThis as { document?: { cookie?: string } }).document?.cookie
  if (!c) return undefined
  for (const part of c.split(';')) {
    const [k, ...v] = part.trim().split('=')
    if (k === 'pl_csrf') return decodeURIComponent(v.join('=')) || undefined
  }
  return undefined
}

function defaultLocks(): Locks | null {
  const l = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks
  if (!l) return null
  return { request: <T>(name: string, cb: () => Promise<T>) => l.request(name, { mode: 'exclusive' }, cb) as Promise<T> }
}

export class ApiClient {
  readonly mode: 'cookie' | 'body'
  readonly #base: string
  readonly #fetch: typeof globalThis.fetch
  readonly #locks: Locks | null
  readonly #epoch: EpochStore
  readonly #onSessionEnded?: () => void
  // Memory only.
  #access?: string
  #refresh?: string
  #csrf?: string
  #refreshing?: Promise<void>
  #tail: Promise<unknown> = Promise.resolve() // in-tab lock when Web Locks are missing

  constructor(o: ApiClientOptions = {}) {
    this.mode = o.mode ?? 'cookie'
    this.#base = o.baseUrl ?? ''
    this.#fetch = o.fetch ?? globalThis.fetch.bind(globalThis)
    this.#locks = o.locks === undefined ? defaultLocks() : o.locks
    this.#epoch = o.epoch ?? memoryEpoch()
    this.#onSessionEnded = o.onSessionEnded
    if (this.mode === 'cookie') this.#csrf = (o.csrfCookie ?? readCsrfCookie)()
  }

  /** Whether the client holds a session (it may still turn out expired). */
  get hasSession(): boolean {
    return this.mode === 'cookie' ? this.#csrf !== undefined : this.#refresh !== undefined
  }

  /** Adopts the tokens of a login or refresh answer. */
  adoptTokens(t: TokenResponse): void {
    if (this.mode === 'cookie') {
      if (!t.csrf_token) throw new ApiError('bad_response', 200, humanMessage('bad_response'), 'no csrf_token in a cookie-mode answer')
      this.#csrf = t.csrf_token
    } else {
      if (!t.access_token || !t.refresh_token)
        throw new ApiError('bad_response', 200, humanMessage('bad_response'), 'no tokens in the answer')
      this.#access = t.access_token
      this.#refresh = t.refresh_token
    }
  }

  /** Forgets the session (log out, or the server ended it). */
  clearSession(): void {
    this.#access = this.#refresh = this.#csrf = undefined
  }

  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<ApiResponse<T>> {
    const auth = o.auth ?? true
    const seen = this.#epoch.get()
    const r = await this.#send(method, path, o, auth)
    if (r.status === 401 && auth && this.hasSession) {
      await this.refreshAfter(seen)
      return this.#finish<T>(await this.#send(method, path, o, auth), o)
    }
    return this.#finish<T>(r, o)
  }

  /** Like request, but the answer's body is returned as bytes (GET /api/files/{id}). */
  async requestBytes(method: string, path: string, o: RequestOptions = {}): Promise<ApiResponse<Uint8Array>> {
    const auth = o.auth ?? true
    const seen = this.#epoch.get()
    let r = await this.#send(method, path, o, auth)
    if (r.status === 401 && auth && this.hasSession) {
      await this.refreshAfter(seen)
      r = await this.#send(method, path, o, auth)
    }
    if (!r.ok) return this.#finish<Uint8Array>(r, o) // throws the ApiError
    let data: Uint8Array
    try {
      data = new Uint8Array(await r.arrayBuffer())
    } catch (e) {
      throw new ApiError('network', 0, o.messages?.network ?? humanMessage('network'), String(e))
    }
    return { status: r.status, data, headers: r.headers }
  }

  get<T>(path: string, o?: RequestOptions): Promise<T> {
    return this.request<T>('GET', path, o).then((r) => r.data)
  }

  post<T>(path: string, body?: unknown, o?: RequestOptions): Promise<T> {
    return this.request<T>('POST', path, { ...o, body }).then((r) => r.data)
  }

  /**
   * Refreshes the session unless another caller did after `seen` (an
   * epoch read before the failed request). One refresh at a time, across
   * tabs with Web Locks; a concurrent caller in this tab shares the result.
   */
  refreshAfter(seen = this.#epoch.get()): Promise<void> {
    this.#refreshing ??= this.#withLock(async () => {
      if (this.#epoch.get() !== seen) return // refreshed meanwhile: reuse it
      await this.#doRefresh()
      this.#epoch.bump()
    }).finally(() => {
      this.#refreshing = undefined
    })
    return this.#refreshing
  }

  #withLock<T>(cb: () => Promise<T>): Promise<T> {
    if (this.#locks) return this.#locks.request('privateline-refresh', cb)
    const run = this.#tail.then(cb, cb)
    this.#tail = run.catch(() => undefined)
    return run
  }

  async #doRefresh(): Promise<void> {
    const body = this.mode === 'cookie' ? { use_cookies: true } : { refresh_token: this.#refresh }
    const r = await this.#send('POST', '/api/refresh', { body }, false, true)
    if (r.status === 401 || r.status === 403) {
      this.clearSession()
      this.#onSessionEnded?.()
      throw new ApiError('session_ended', r.status, humanMessage('session_ended'), (await errorBody(r))?.message ?? '')
    }
    const t = await this.#finish<TokenResponse>(r, {})
    this.adoptTokens(t.data)
  }

  async #send(method: string, path: string, o: RequestOptions, auth: boolean, csrf = false): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...o.headers }
    let body: string | Uint8Array<ArrayBuffer> | undefined
    if (o.bytes !== undefined) {
      body = new Uint8Array(o.bytes)
      headers['Content-Type'] = 'application/octet-stream'
    } else {
      if (o.rawBody !== undefined) body = o.rawBody
      else if (o.body !== undefined) body = JSON.stringify(o.body)
      if (body !== undefined) headers['Content-Type'] = 'application/json'
    }
    if (auth && this.mode === 'body' && this.#access) headers.Authorization = `Bearer ${this.#access}`
    if (this.mode === 'cookie' && this.#csrf && (csrf || (auth && !safeMethods.has(method))))
      headers['X-CSRF-Token'] = this.#csrf
    try {
      return await this.#fetch(this.#base + path, {
        method,
        headers,
        body,
        credentials: this.mode === 'cookie' ? 'include' : 'omit',
        signal: o.signal,
      })
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e
      throw new ApiError('network', 0, o.messages?.network ?? humanMessage('network'), String(e))
    }
  }

  async #finish<T>(r: Response, o: RequestOptions): Promise<ApiResponse<T>> {
    if (r.ok) {
      let data: unknown = undefined
      if (r.status !== 204) {
        const text = await r.text()
        if (text !== '') {
          try {
            data = JSON.parse(text)
          } catch {
            throw new ApiError('bad_response', r.status, humanMessage('bad_response'), 'the body is not JSON')
          }
        }
      }
      return { status: r.status, data: data as T, headers: r.headers }
    }
    const eb = await errorBody(r)
    const code: ApiErrorCode = eb && knownCodes.has(eb.code) ? (eb.code as ApiErrorCode) : codeForStatus(r.status)
    const retryAfter = parseRetryAfter(r.headers.get('Retry-After'))
    throw new ApiError(code, r.status, o.messages?.[code] ?? humanMessage(code, retryAfter), eb?.message ?? '', retryAfter)
  }
}

async function errorBody(r: Response): Promise<{ code: string; message: string } | undefined> {
  try {
    const v = (await r.json()) as { error?: { code?: unknown; message?: unknown } }
    if (typeof v?.error?.code === 'string') return { code: v.error.code, message: String(v.error.message ?? '') }
  } catch {
    // not the server's error shape
  }
  return undefined
}
