// Notifications while the app is closed, against a REAL homeserver built
// from this repository with Web Push configured (a VAPID key made by
// `homeserver gen-vapid`, push services allowed: push.example.net). The
// browser side (permission, service worker, PushManager) is the fake of
// src/engine/testing/fakePush.ts: no browser can subscribe to a push
// service without a network, so the server never gets to deliver to these
// subscriptions; what is checked is what the server holds (GET
// /api/push-token) and what the engine does with it. The service worker's
// notification is tested in Chromium (e2e/push.test.mjs).
// Without a Go toolchain this file fails: it never skips.
import 'fake-indexeddb/auto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClosableEngine, createAuth } from '../src/engine'
import { FakeBrowser } from '../src/engine/testing/fakePush'
import { waitFor } from './waitfor'
import { buildHomeserver, cookieJar, type Homeserver, startHomeserver } from './homeserver'

const SERVER = 'push.test'
const PW = 'correct horse battery staple'
const work = mkdtempSync(join(tmpdir(), 'pl-push-'))
let bin = ''

let base = ''

let server: Homeserver | undefined

async function startServer(): Promise<string> {
  const pem = execFileSync(bin, ['gen-vapid'], { encoding: 'utf8' }).match(/-----BEGIN PRIVATE KEY-----[^]*?-----END PRIVATE KEY-----\n/)
  if (!pem) throw new Error('homeserver gen-vapid printed no PEM key')
  const keyFile = join(work, 'vapid.pem')
  writeFileSync(keyFile, pem[0], { mode: 0o600 })
  server = await startHomeserver(bin, {
    DATA_DIR: join(work, 'data'), LISTEN_ADDR: '127.0.0.1:0', SERVER_NAME: SERVER,
    VAPID_PRIVATE_KEY: keyFile, VAPID_SUBJECT: 'mailto:ops@push.test', WEB_PUSH_ALLOWED_HOSTS: 'push.example.net',
  })
  return server.addr
}

const jar = () => cookieJar()

interface User {
  name: string
  jar: ReturnType<typeof jar>
  browser: FakeBrowser
  e: ClosableEngine
}
const users: Record<string, User> = {}
const engines: ClosableEngine[] = []

function auth(u: Pick<User, 'name' | 'jar' | 'browser'>) {
  return createAuth({
    baseUrl: base, fetch: u.jar.fetch, csrfCookie: u.jar.csrfCookie, WebSocket: globalThis.WebSocket, namespace: `pl-${u.name}`,
    locks: null, minBackoffMs: 100, maxBackoffMs: 800, push: u.browser,
  })
}

function track(e: ClosableEngine): ClosableEngine {
  engines.push(e)
  return e
}

interface Token {
  token: string
  platform: string
  refreshed_at: string
}

/** What the server holds for the user (GET /api/push-token with the user's session). */
async function serverTokens(u: Pick<User, 'jar'>): Promise<Token[]> {
  const r = await u.jar.fetch(`${base}/api/push-token`, { credentials: 'include' })
  expect(r.status).toBe(200)
  return ((await r.json()) as { tokens: Token[] }).tokens
}

const endpointOf = (t: string) => (JSON.parse(t) as { endpoint: string }).endpoint
const dm = (name: string) => `d:${name}@${SERVER}`

beforeAll(async () => {
  bin = buildHomeserver(work)
  base = 'http://' + (await startServer())
  await Promise.all(
    ['alice', 'bob', 'carol'].map(async (name) => {
      const u = { name, jar: jar(), browser: new FakeBrowser() }
      users[name] = { ...u, e: track((await auth(u).register(name, PW)) as ClosableEngine) }
    }),
  )
}, 300_000)

afterAll(async () => {
  for (const e of engines) e.close()
  await server?.stop()
  rmSync(work, { recursive: true, force: true })
})

describe('notifications against a real homeserver', () => {
  it('turns on: the permission, a subscription to the server key, the registration the server holds', async () => {
    const { alice } = users
    await waitFor(alice.e, (s) => s.connection === 'online' && s.push === 'off', 'alice online, notifications off')
    await alice.e.enablePush()
    expect(alice.e.getState().push).toBe('on')
    const key = (await (await fetch(`${base}/api/push/vapid-public-key`)).json()) as { public_key: string }
    expect(alice.browser.pm.subscribed).toHaveLength(1)
    expect(Buffer.from(alice.browser.pm.subscribed[0].key).toString('base64url')).toBe(key.public_key)
    const held = await serverTokens(alice)
    expect(held.map((t) => [t.platform, endpointOf(t.token)])).toEqual([['web', alice.browser.pm.sub!.endpoint]])
  })

  it("refuses a push service the server does not send to, with the server's reason", async () => {
    const { carol } = users
    const elsewhere = new FakeBrowser('push.elsewhere.example')
    await carol.e.logout()
    const e = track((await auth({ ...carol, browser: elsewhere }).login('carol', PW)) as ClosableEngine)
    users.carol = { ...carol, browser: elsewhere, e }
    await expect(e.enablePush()).rejects.toThrow(
      'Notifications could not be turned on: this server does not send Web Push to that push service: push.elsewhere.example is not a push service this server sends to.',
    )
    expect(e.getState().push).toBe('off')
    expect(elsewhere.pm.sub).toBeNull()
    expect(await serverTokens(carol)).toEqual([])
  })

  it('registers again on every start, and opens the newest unread conversation once in step with the server', async () => {
    const { alice, bob, carol } = users
    const before = (await serverTokens(alice))[0].refreshed_at
    alice.e.close() // the app is closed
    await bob.e.openDirect('alice')
    await bob.e.send(dm('alice'), 'first, from bob')
    const g = await carol.e.createGroup('Later', ['alice'])
    await carol.e.send(g, 'then, in the group')
    await waitFor(carol.e, (s) => s.messages[g]?.some((m) => m.text === 'then, in the group' && m.status === 'delivered') ?? false, 'carol: delivered')

    // The app starts again (a notification was clicked).
    const e = track((await auth(alice).restore())!)
    users.alice.e = e
    expect(e.getState().push).toBe('on') // from the browser, before any network
    // Asked at once, it answers after catching up, not from the stale cache.
    expect(await e.newestUnread()).toBe(g)
    await e.markRead(g)
    expect(await e.newestUnread()).toBe(dm('bob'))
    await e.markRead(dm('bob'))
    expect(await e.newestUnread()).toBeNull()

    const after = await waitForRefresh(alice, before)
    expect(after.map((t) => endpointOf(t.token))).toEqual([alice.browser.pm.sub!.endpoint])
    expect(alice.browser.pm.subscribed).toHaveLength(1) // the same subscription, registered again
  })

  it('logging out unregisters and unsubscribes this browser', async () => {
    const { alice } = users
    const sub = alice.browser.pm.sub
    expect(sub).not.toBeNull()
    await alice.e.logout()
    expect(alice.browser.pm.sub).toBeNull()
    const again = { ...alice, jar: jar() }
    const e = track((await auth(again).login('alice', PW)) as ClosableEngine)
    expect(e.getState().push).toBe('off')
    expect(await serverTokens(again)).toEqual([])
  })
})

/** Waits until the server's refreshed_at of the user's token moved past before. */
async function waitForRefresh(u: User, before: string): Promise<Token[]> {
  const end = Date.now() + 20_000
  for (;;) {
    const t = await serverTokens(u)
    if (t.length === 1 && Date.parse(t[0].refreshed_at) > Date.parse(before)) return t
    if (Date.now() > end) throw new Error(`the registration was not renewed: ${JSON.stringify(t)} (before: ${before})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
