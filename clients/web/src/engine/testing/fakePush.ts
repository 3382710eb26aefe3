// A browser's Web Push for tests: the Notification permission (and what
// the user answers when asked), the service worker's PushManager and its
// subscriptions. TEST-ONLY: production code never imports this file.
// Headless browsers cannot subscribe to a real push service, so the
// subscribe path of src/engine/push.ts is tested over this fake.
import type { PushEnv, PushManagerLike, SubscriptionLike } from '../push'

export const b64url = (b: Uint8Array) => btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')

let endpoints = 0

export class FakeSubscription implements SubscriptionLike {
  readonly endpoint: string
  readonly options: { applicationServerKey: ArrayBuffer }
  constructor(
    private pm: FakePushManager,
    key: Uint8Array,
    readonly keys: { p256dh: string; auth: string },
  ) {
    this.endpoint = `https://${pm.host}/send/${++endpoints}-${Math.random().toString(36).slice(2, 8)}`
    this.options = { applicationServerKey: new Uint8Array(key).buffer }
  }
  toJSON() {
    return { endpoint: this.endpoint, expirationTime: null, keys: this.keys }
  }
  async unsubscribe(): Promise<boolean> {
    if (this.pm.sub !== this) return false
    this.pm.sub = null
    return true
  }
}

export class FakePushManager implements PushManagerLike {
  sub: FakeSubscription | null = null
  subscribed: { userVisibleOnly: boolean; key: Uint8Array }[] = []
  /** the push service cannot be reached (what headless Chromium answers) */
  failWith?: DOMException
  /** @param host the push service's host in the endpoints it hands out */
  constructor(readonly host = 'push.example.net') {}
  async getSubscription() {
    return this.sub
  }
  async subscribe(o: { userVisibleOnly: boolean; applicationServerKey: Uint8Array }) {
    if (this.failWith) throw this.failWith
    this.subscribed.push({ userVisibleOnly: o.userVisibleOnly, key: new Uint8Array(o.applicationServerKey) })
    // As a browser: a P-256 key and an auth secret for RFC 8291.
    const k = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])
    const p256dh = b64url(new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey)))
    const auth = b64url(crypto.getRandomValues(new Uint8Array(16)))
    this.sub = new FakeSubscription(this, o.applicationServerKey, { p256dh, auth })
    return this.sub
  }
}

/** The browser: a permission, the answer the user gives to the prompt, a service worker. */
export class FakeBrowser implements PushEnv {
  perm: NotificationPermission = 'default'
  /** what the user clicks when asked */
  answer: NotificationPermission = 'granted'
  asked = 0
  pm: FakePushManager
  /** a service worker is registered */
  registered = true
  constructor(host?: string) {
    this.pm = new FakePushManager(host)
  }
  permission() {
    return this.perm
  }
  requestPermission() {
    this.asked++
    if (this.perm === 'default') this.perm = this.answer
    return Promise.resolve(this.perm)
  }
  async ready() {
    return this.pm
  }
  async current() {
    return this.registered ? this.pm : undefined
  }
}
