// Notifications while PrivateLine is closed: Web Push (RFC 8030, 8291,
// 8292) through the app's service worker (public/sw.js), registered with
// the homeserver (POST/DELETE /api/push-token; docs/operations.md "Push
// notifications").
//
// What a push carries is the homeserver's business and holds nothing
// readable: {"type":"new_message","unread":n}. The service worker shows
// "New message"; nothing about messages goes to it, to the push service or
// to storage in clear. The account's store keeps (sealed, like all of it)
// the subscription this account registered, so that it is the one deleted
// on sign-out and so that another account signed in later on the same
// browser never inherits it.
//
// Lifecycle:
//  - start: the state from what the browser says (no network);
//  - refresh, once per start when the session works: the homeserver keeps
//    the most recently registered tokens, so the subscription is registered
//    again; subscribed again when the server's VAPID key changed or the
//    browser dropped the subscription while the permission stands;
//  - enable (a click): permission → service worker → subscribe → register;
//  - disable, sign-out: unregister and unsubscribe (unsubscribing alone
//    is enough to stop pushes: the push service then answers the server
//    404/410 and the server forgets the token).
import { ApiError, type ApiClient, humanMessage } from '../api/client'
import { EngineError, retryable } from './errors'
import type { PushState } from './types'

/** The parts of a PushSubscription used here. */
export interface SubscriptionLike {
  readonly endpoint: string
  readonly options?: { readonly applicationServerKey: ArrayBuffer | null }
  toJSON(): unknown
  unsubscribe(): Promise<boolean>
}

export interface PushManagerLike {
  getSubscription(): Promise<SubscriptionLike | null>
  subscribe(o: { userVisibleOnly: boolean; applicationServerKey: Uint8Array<ArrayBuffer> }): Promise<SubscriptionLike>
}

/** What the browser offers (navigator.serviceWorker, PushManager, Notification). */
export interface PushEnv {
  permission(): NotificationPermission
  requestPermission(): Promise<NotificationPermission>
  /** the service worker's push manager once it is active (waits for it) */
  ready(): Promise<PushManagerLike>
  /** the service worker's push manager if one is registered now, without waiting */
  current(): Promise<PushManagerLike | undefined>
}

/** How long enable() waits for the service worker to be active. */
const READY_TIMEOUT_MS = 30_000

/**
 * The browser's push, or null when it has none: no service worker, no
 * PushManager or no Notification; also in development builds, where the
 * app registers no service worker (src/sw.ts).
 */
export function browserPushEnv(): PushEnv | null {
  const g = globalThis as {
    navigator?: { serviceWorker?: ServiceWorkerContainer }
    PushManager?: unknown
    Notification?: typeof Notification
  }
  const sw = g.navigator?.serviceWorker
  const N = g.Notification
  if (!import.meta.env.PROD || !sw || typeof g.PushManager === 'undefined' || !N || typeof N.requestPermission !== 'function') return null
  return {
    permission: () => N.permission,
    requestPermission: () => N.requestPermission(),
    ready: async () => (await sw.ready).pushManager as unknown as PushManagerLike,
    current: async () => (await sw.getRegistration('/'))?.pushManager as unknown as PushManagerLike | undefined,
  }
}

/** What the account's store keeps: the subscription registered for this account. */
export interface Registered {
  /** JSON.stringify(PushSubscription), as sent to POST /api/push-token */
  token: string
}

export interface PushDeps {
  api: ApiClient
  env: PushEnv | null
  load(): Promise<Registered | undefined>
  save(r: Registered | undefined): Promise<void>
  /** called after every change of state or error */
  changed(): void
}

function fromB64url(s: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(s)) return null
  const b = s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/')
  try {
    const bin = atob(b + '='.repeat((4 - (b.length % 4)) % 4))
    const out = new Uint8Array(bin.length)
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
    return out
  } catch {
    return null
  }
}

function sameBytes(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false
  const x = new Uint8Array(a)
  return x.every((v, i) => v === b[i])
}

const notSent = 'This server does not send notifications while PrivateLine is closed.'
const blocked = 'Notifications are blocked for PrivateLine in this browser. Allow them in the site settings (the icon left of the address), then try again.'

export class PushControl {
  #state: PushState
  #error?: string
  readonly #d: PushDeps
  /** one change at a time */
  #tail: Promise<unknown> = Promise.resolve()
  #refreshed = false

  constructor(d: PushDeps) {
    this.#d = d
    this.#state = d.env ? 'off' : 'unsupported'
  }

  get state(): PushState {
    return this.#state
  }

  get error(): string | undefined {
    return this.#error
  }

  /** Whether the refresh of this start is done (it runs again after a failure). */
  get refreshed(): boolean {
    return this.#refreshed
  }

  #set(state: PushState, error?: string): void {
    if (state === this.#state && error === this.#error) return
    this.#state = state
    this.#error = error
    this.#d.changed()
  }

  #serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(f, f)
    this.#tail = run.catch(() => undefined)
    return run
  }

  /** The state from what the browser and the store say; no network. */
  init(): Promise<void> {
    return this.#serial(async () => {
      const env = this.#d.env
      if (!env) return
      if (env.permission() === 'denied') return this.#set('denied')
      const [reg, sub] = await Promise.all([this.#d.load(), this.#subscription(env)])
      this.#set(reg && sub && env.permission() === 'granted' ? 'on' : 'off')
    })
  }

  /**
   * Registers this browser's subscription again (once per start, when the
   * session works). Network failures reject (the caller tries again on the
   * next connection); other failures are kept as `error`.
   */
  refresh(): Promise<void> {
    return this.#serial(async () => {
      const env = this.#d.env
      if (!env) {
        this.#refreshed = true
        return
      }
      const key = await this.#vapidKey()
      if (!key) {
        this.#refreshed = true
        return this.#set('unavailable')
      }
      const reg = await this.#d.load()
      const perm = env.permission()
      if (perm !== 'granted') {
        if (reg) await this.#forget(env, reg)
        this.#refreshed = true
        return this.#set(perm === 'denied' ? 'denied' : 'off')
      }
      if (!reg) {
        this.#refreshed = true
        return this.#set('off')
      }
      try {
        const pm = await env.current()
        let sub = pm ? await pm.getSubscription() : null
        if (!pm) {
          // No service worker now (the site's data was cleared): nothing can show a push.
          await this.#unregister(reg.token)
          await this.#d.save(undefined)
          this.#refreshed = true
          return this.#set('off')
        }
        if (sub && !sameBytes(sub.options?.applicationServerKey, key)) {
          // The server has a new VAPID key: the old subscription is refused by the push service.
          await sub.unsubscribe().catch(() => false)
          sub = null
        }
        sub ??= await pm.subscribe({ userVisibleOnly: true, applicationServerKey: key })
        const token = JSON.stringify(sub)
        if (token !== reg.token) await this.#unregister(reg.token)
        await this.#register(token)
        this.#refreshed = true
        this.#set('on')
      } catch (e) {
        // Network, 5xx, 429: the next connection tries again.
        if (retryable(e)) throw e
        this.#refreshed = true
        if (e instanceof ApiError && e.status === 400) {
          // The server refuses this browser's push service now: nothing will come through it.
          await this.#forget(env, await this.#d.load()).catch(() => undefined)
          return this.#set('off', pushFailure(e, 'Notifications were turned off'))
        }
        this.#set(this.#state, pushFailure(e, 'Notifications could not be kept on'))
      }
    })
  }

  /**
   * Turns notifications on. Asks for the permission synchronously (the
   * caller is the click handler), the rest one change at a time.
   */
  enable(): Promise<void> {
    const env = this.#d.env
    if (!env) return Promise.reject(new EngineError('This browser cannot show notifications while PrivateLine is closed.', 'push_unsupported'))
    let permission: Promise<NotificationPermission>
    try {
      // (Promise.resolve: a browser with the old callback form answers undefined.)
      permission = Promise.resolve(env.requestPermission())
    } catch (e) {
      permission = Promise.reject(e)
    }
    const key = this.#vapidKey()
    permission.catch(() => undefined)
    key.catch(() => undefined)
    return this.#serial(async () => {
      try {
        const p = await permission
        if (p === 'denied') {
          this.#set('denied')
          throw new EngineError(blocked, 'push_denied')
        }
        if (p !== 'granted') throw new EngineError('Notifications were not allowed. Turn the switch on again and choose “Allow”.', 'push_dismissed')
        const k = await key
        if (!k) {
          this.#set('unavailable')
          throw new EngineError(notSent, 'push_unavailable')
        }
        const pm = await withTimeout(env.ready(), READY_TIMEOUT_MS,
          'The app’s background worker is not running, so notifications cannot be turned on. Reload the page and try again.')
        const reg = await this.#d.load()
        let sub = await pm.getSubscription()
        if (sub && (JSON.stringify(sub) !== reg?.token || !sameBytes(sub.options?.applicationServerKey, k))) {
          // Not this account's, or for another server key: start afresh.
          await sub.unsubscribe().catch(() => false)
          sub = null
        }
        if (reg && reg.token !== JSON.stringify(sub)) await this.#unregister(reg.token)
        sub ??= await pm.subscribe({ userVisibleOnly: true, applicationServerKey: k })
        try {
          await this.#register(JSON.stringify(sub))
        } catch (e) {
          await sub.unsubscribe().catch(() => false)
          await this.#d.save(undefined)
          throw e
        }
        this.#refreshed = true
        this.#set('on')
      } catch (e) {
        // The sentence goes to the switch (the rejection); no older one stays next to it.
        this.#set(this.#state === 'on' ? 'off' : this.#state)
        throw e instanceof EngineError ? e : new EngineError(pushFailure(e, 'Notifications could not be turned on'), 'push_failed')
      }
    })
  }

  /** Turns notifications off: unregisters and unsubscribes this browser. */
  disable(): Promise<void> {
    return this.#serial(async () => {
      const env = this.#d.env
      if (!env) return
      try {
        const reg = await this.#d.load()
        await this.#forget(env, reg)
      } catch (e) {
        throw new EngineError(pushFailure(e, 'Notifications could not be turned off'), 'push_failed')
      }
      this.#set(env.permission() === 'denied' ? 'denied' : 'off')
    })
  }

  /**
   * Before the session ends (log out, delete): this browser stops hearing
   * of the account. Never rejects: a failure to unregister is made good by
   * the unsubscription (the server forgets a token the push service calls
   * gone).
   */
  signOut(): Promise<void> {
    return this.#serial(async () => {
      const env = this.#d.env
      if (!env) return
      try {
        const reg = await this.#d.load()
        const pm = await env.current()
        const sub = pm ? await pm.getSubscription() : null
        // Any subscription of this browser goes: one account is signed in
        // at a time, and none that signed out may be heard of here.
        if (reg || sub) await this.#forget(env, reg)
      } catch {
        // best effort, see above
      }
      this.#set(env.permission() === 'denied' ? 'denied' : 'off')
    })
  }

  /** Unregisters reg and this browser's subscription; unsubscribes it. */
  async #forget(env: PushEnv, reg: Registered | undefined): Promise<void> {
    const sub = await this.#subscription(env)
    const tokens = new Set<string>()
    if (reg) tokens.add(reg.token)
    if (sub) tokens.add(JSON.stringify(sub))
    for (const t of tokens) await this.#unregister(t)
    if (sub) await sub.unsubscribe()
    await this.#d.save(undefined)
  }

  async #subscription(env: PushEnv): Promise<SubscriptionLike | null> {
    const pm = await env.current()
    return pm ? pm.getSubscription() : null
  }

  /**
   * The server's VAPID key, or null when it sends no Web Push: it answers
   * {"available": false} (a server before that answered 404).
   */
  async #vapidKey(): Promise<Uint8Array<ArrayBuffer> | null> {
    try {
      const r = await this.#d.api.get<{ available?: unknown; public_key?: unknown }>('/api/push/vapid-public-key', { auth: false })
      if (r?.available === false) return null
      const k = typeof r?.public_key === 'string' ? fromB64url(r.public_key) : null
      if (!k || k.length !== 65 || k[0] !== 4) throw new ApiError('bad_response', 200, humanMessage('bad_response'), 'not a VAPID public key')
      return k
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null
      throw e
    }
  }

  async #register(token: string): Promise<void> {
    await this.#d.api.post('/api/push-token', { platform: 'web', token })
    await this.#d.save({ token })
  }

  /** DELETE /api/push-token; a token the server no longer has is fine, so is no network (see signOut). */
  async #unregister(token: string): Promise<void> {
    try {
      await this.#d.api.request('DELETE', '/api/push-token', { body: { token } })
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.code === 'network' || e.code === 'session_ended' || e.status === 401)) return
      throw e
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, sentence: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new EngineError(sentence, 'push_no_worker')), ms)
    p.then(
      (v) => {
        clearTimeout(t)
        resolve(v)
      },
      (e: unknown) => {
        clearTimeout(t)
        reject(e)
      },
    )
  })
}

/** A sentence for a failure while turning notifications on, keeping them on or off. */
export function pushFailure(e: unknown, what: string): string {
  if (e instanceof EngineError) return e.message
  if (e instanceof ApiError) {
    // The server's own sentence says why it refuses this browser's push
    // service (its allowlist, docs/operations.md).
    if (e.status === 400 && e.serverMessage) return `${what}: ${e.serverMessage.replace(/\.$/, '')}.`
    return e.message
  }
  if (e instanceof DOMException || (e instanceof Error && e.name)) {
    const name = (e as Error).name
    if (name === 'NotAllowedError') return blocked
    if (name === 'InvalidStateError' || name === 'AbortError' || name === 'NotSupportedError' || name === 'UnknownError')
      return `${what}: this browser’s push service did not answer. Private windows and some browsers have none; otherwise try again later.`
  }
  return `${what}. Try again.`
}
