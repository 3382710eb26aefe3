// The web client's push logic (push.ts) over fakes of the browser
// (Notification permission, the service worker's PushManager and its
// subscriptions) and of the homeserver's routes (GET
// /api/push/vapid-public-key, POST and DELETE /api/push-token). Headless
// browsers cannot subscribe to a real push service, so this is where the
// subscribe path is tested; e2e/push.test.mjs covers the service worker.
import { beforeEach, describe, expect, it } from 'vitest'
import { ApiClient } from '../api/client'
import { PushControl, type PushEnv, type Registered, type SubscriptionLike } from './push'
import { FakeBrowser, b64url } from './testing/fakePush'

async function vapidKey(): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])
  return new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey))
}

/** The homeserver's push routes. */
class FakeServer {
  key: Uint8Array | null = null
  tokens = new Set<string>()
  requests: string[] = []
  /** POST /api/push-token answers 400 with this sentence (the allowlist) */
  refuse?: string
  down = false
  /** Without a key, answer 404 as servers did before {"available": false}. */
  answer404 = false
  fetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input), 'http://hs.test')
    const method = init?.method ?? 'GET'
    this.requests.push(`${method} ${url.pathname}`)
    if (this.down) throw new TypeError('fetch failed')
    const json = (status: number, v: unknown) => new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } })
    const error = (status: number, code: string, message: string) => json(status, { error: { code, message } })
    const body = init?.body ? (JSON.parse(String(init.body)) as { token: string; platform?: string }) : undefined
    switch (`${method} ${url.pathname}`) {
      case 'GET /api/push/vapid-public-key':
        if (this.key) return json(200, { available: true, public_key: b64url(this.key) })
        return this.answer404 ? error(404, 'not_found', 'this server does not send Web Push notifications (VAPID_PRIVATE_KEY is not set)') : json(200, { available: false })
      case 'POST /api/push-token': {
        if (body?.platform !== 'web') return error(400, 'invalid_request', '"platform" must be "ios", "android" or "web"')
        if (this.refuse) return error(400, 'invalid_request', this.refuse)
        const created = !this.tokens.has(body.token)
        this.tokens.add(body.token)
        return json(created ? 201 : 200, { token: body.token, platform: 'web' })
      }
      case 'DELETE /api/push-token':
        if (!this.tokens.delete(body!.token)) return error(404, 'not_found', 'no such token')
        return new Response(null, { status: 204 })
    }
    return error(404, 'not_found', 'no route')
  }
}

let browser: FakeBrowser
let server: FakeServer
let stored: Registered | undefined
let changes: number

function control(env: PushEnv | null = browser): PushControl {
  return new PushControl({
    api: new ApiClient({ fetch: server.fetch, mode: 'cookie', locks: null, csrfCookie: () => 'csrf' }),
    env,
    load: async () => stored,
    save: async (r) => {
      stored = r
    },
    changed: () => void changes++,
  })
}

const tokenOf = (s: SubscriptionLike | null) => JSON.stringify(s)

beforeEach(async () => {
  browser = new FakeBrowser()
  server = new FakeServer()
  server.key = await vapidKey()
  stored = undefined
  changes = 0
})

/** Notifications on, as after a click on the switch. */
async function turnedOn(): Promise<PushControl> {
  const p = control()
  await p.init()
  await p.enable()
  expect(p.state).toBe('on')
  return p
}

describe('turning notifications on', () => {
  it('asks for the permission within the click, subscribes with the server key and registers the subscription', async () => {
    const p = control()
    await p.init()
    expect(p.state).toBe('off')
    const done = p.enable()
    // Synchronously: the browser only prompts while the click counts as a gesture.
    expect(browser.asked).toBe(1)
    await done
    expect(p.state).toBe('on')
    expect(p.error).toBeUndefined()
    expect(browser.pm.subscribed).toEqual([{ userVisibleOnly: true, key: server.key }])
    const token = tokenOf(browser.pm.sub)
    expect(JSON.parse(token)).toMatchObject({ endpoint: browser.pm.sub!.endpoint, keys: { p256dh: expect.any(String), auth: expect.any(String) } })
    expect([...server.tokens]).toEqual([token])
    expect(stored).toEqual({ token })
    expect(changes).toBeGreaterThan(0)
  })

  it('shows "denied" with what to do when the user blocks notifications, and subscribes to nothing', async () => {
    browser.answer = 'denied'
    const p = control()
    await p.init()
    await expect(p.enable()).rejects.toThrow(/Notifications are blocked for PrivateLine in this browser\. Allow them in the site settings/)
    expect(p.state).toBe('denied')
    expect(browser.pm.sub).toBeNull()
    expect(server.tokens.size).toBe(0)
    // Next start: the browser says so before any network.
    const again = control()
    await again.init()
    expect(again.state).toBe('denied')
  })

  it('stays off with a sentence when the prompt is dismissed', async () => {
    browser.answer = 'default'
    const p = control()
    await p.init()
    await expect(p.enable()).rejects.toThrow('Notifications were not allowed. Turn the switch on again and choose “Allow”.')
    expect(p.state).toBe('off')
    expect(server.requests).not.toContain('POST /api/push-token')
  })

  it.each([
    ['says it is not available', false],
    ['answers 404 for the key (servers before {"available": false})', true],
  ])('is "unavailable" when the server sends no Web Push: it %s', async (_, answer404) => {
    server.key = null
    server.answer404 = answer404
    const p = control()
    await p.init()
    await p.refresh()
    expect(p.state).toBe('unavailable')
    await expect(p.enable()).rejects.toThrow('This server does not send notifications while PrivateLine is closed.')
    expect(p.state).toBe('unavailable')
    expect(browser.pm.sub).toBeNull()
  })

  it("shows the server's sentence when it refuses this browser's push service (400), and leaves nothing subscribed", async () => {
    server.refuse = 'this server does not send Web Push to that push service: push.example.net is not a push service this server sends to'
    const p = control()
    await p.init()
    await expect(p.enable()).rejects.toThrow(
      'Notifications could not be turned on: this server does not send Web Push to that push service: push.example.net is not a push service this server sends to.',
    )
    expect(p.state).toBe('off')
    expect(browser.pm.sub).toBeNull()
    expect(stored).toBeUndefined()
  })

  it('says so when the browser cannot reach its push service', async () => {
    browser.pm.failWith = new DOMException('Registration failed - push service error', 'AbortError')
    const p = control()
    await p.init()
    await expect(p.enable()).rejects.toThrow(/Notifications could not be turned on: this browser’s push service did not answer/)
    expect(p.state).toBe('off')
    expect(server.tokens.size).toBe(0)
  })

  it('says so when the server cannot be reached', async () => {
    const p = control()
    await p.init()
    server.down = true
    await expect(p.enable()).rejects.toThrow('Cannot reach the server. Check your connection and try again.')
    expect(p.state).toBe('off')
  })

  it('is "unsupported" without service worker, PushManager or Notification, and asks nothing', async () => {
    const p = control(null)
    await p.init()
    expect(p.state).toBe('unsupported')
    await expect(p.enable()).rejects.toThrow('This browser cannot show notifications while PrivateLine is closed.')
    await p.refresh()
    await p.signOut()
    expect(server.requests).toEqual([])
  })

  it("does not take over a subscription another account left on this browser", async () => {
    const other = await browser.pm.subscribe({ userVisibleOnly: true, applicationServerKey: server.key! })
    browser.perm = 'granted'
    const p = control()
    await p.init()
    expect(p.state).toBe('off') // not this account's
    await p.refresh()
    expect(server.requests).not.toContain('POST /api/push-token')
    await p.enable()
    expect(browser.pm.sub).not.toBe(other)
    expect([...server.tokens]).toEqual([tokenOf(browser.pm.sub)])
  })
})

describe('turning notifications off', () => {
  it('unregisters and unsubscribes', async () => {
    const p = await turnedOn()
    await p.disable()
    expect(p.state).toBe('off')
    expect(server.tokens.size).toBe(0)
    expect(browser.pm.sub).toBeNull()
    expect(stored).toBeUndefined()
  })

  it('unsubscribes even when the server cannot be reached (the push service then reports the token gone)', async () => {
    const p = await turnedOn()
    server.down = true
    await p.disable()
    expect(p.state).toBe('off')
    expect(browser.pm.sub).toBeNull()
    expect(server.requests.filter((r) => r === 'DELETE /api/push-token')).toHaveLength(1)
  })
})

describe('every start', () => {
  it('shows "on" from the browser alone, then registers the same subscription again', async () => {
    await turnedOn()
    const token = tokenOf(browser.pm.sub)
    server.requests = []
    const next = control() // the app started again
    await next.init()
    expect(next.state).toBe('on')
    expect(server.requests).toEqual([])
    expect(next.refreshed).toBe(false)
    await next.refresh()
    expect(server.requests).toEqual(['GET /api/push/vapid-public-key', 'POST /api/push-token'])
    expect([...server.tokens]).toEqual([token])
    expect(next.state).toBe('on')
    expect(next.refreshed).toBe(true)
  })

  it('subscribes again when the server has a new VAPID key, and drops the old token', async () => {
    await turnedOn()
    const old = tokenOf(browser.pm.sub)
    server.key = await vapidKey()
    const next = control()
    await next.init()
    await next.refresh()
    expect(browser.pm.subscribed.at(-1)).toEqual({ userVisibleOnly: true, key: server.key })
    const fresh = tokenOf(browser.pm.sub)
    expect(fresh).not.toBe(old)
    expect([...server.tokens]).toEqual([fresh])
    expect(stored).toEqual({ token: fresh })
    expect(next.state).toBe('on')
  })

  it('subscribes again when the browser dropped the subscription while the permission stands', async () => {
    await turnedOn()
    const old = tokenOf(browser.pm.sub)
    browser.pm.sub = null
    const next = control()
    await next.init()
    expect(next.state).toBe('off')
    await next.refresh()
    expect(next.state).toBe('on')
    expect([...server.tokens]).toEqual([tokenOf(browser.pm.sub)])
    expect(server.tokens.has(old)).toBe(false)
  })

  it('turns off and unregisters when the user blocked notifications in the browser since', async () => {
    await turnedOn()
    browser.perm = 'denied'
    const next = control()
    await next.init()
    expect(next.state).toBe('denied')
    await next.refresh()
    expect(next.state).toBe('denied')
    expect(server.tokens.size).toBe(0)
    expect(stored).toBeUndefined()
  })

  it('turns off with the sentence when the server no longer takes this push service', async () => {
    await turnedOn()
    server.refuse = 'this server does not send Web Push to that push service: push.example.net is not a push service this server sends to'
    const next = control()
    await next.init()
    await next.refresh()
    expect(next.state).toBe('off')
    expect(next.error).toBe('Notifications were turned off: this server does not send Web Push to that push service: push.example.net is not a push service this server sends to.')
    expect(browser.pm.sub).toBeNull()
    // Turning them on again clears the sentence.
    server.refuse = undefined
    await next.enable()
    expect(next.error).toBeUndefined()
    expect(next.state).toBe('on')
  })

  it('tries again on the next connection when the server cannot be reached', async () => {
    await turnedOn()
    server.down = true
    const next = control()
    await next.init()
    await expect(next.refresh()).rejects.toThrow('Cannot reach the server')
    expect(next.refreshed).toBe(false)
    expect(next.state).toBe('on')
    server.down = false
    await next.refresh()
    expect(next.refreshed).toBe(true)
  })
})

describe('signing out', () => {
  it('unregisters and unsubscribes, so a shared computer stops hearing of the user', async () => {
    const p = await turnedOn()
    await p.signOut()
    expect(server.tokens.size).toBe(0)
    expect(browser.pm.sub).toBeNull()
    expect(stored).toBeUndefined()
    expect(p.state).toBe('off')
  })

  it('never fails, and still unsubscribes, when the server cannot be reached', async () => {
    const p = await turnedOn()
    server.down = true
    await expect(p.signOut()).resolves.toBeUndefined()
    expect(browser.pm.sub).toBeNull()
  })

  it('does nothing when notifications were never on', async () => {
    const p = control()
    await p.init()
    await p.signOut()
    expect(server.requests).toEqual([])
  })
})
