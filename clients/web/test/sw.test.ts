// public/sw.js's notification handlers, run in a VM context over a fake
// service worker global (registration, clients, events). Headless Chromium
// cannot click a system notification, so the click's two outcomes (focus
// an open window and tell it, or open one at /?open=unread) are checked
// here; e2e/push.test.mjs checks the push in Chromium and what the app does
// with the URL and the message.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'

const source = readFileSync(fileURLToPath(new URL('../public/sw.js', import.meta.url)), 'utf8')
const ORIGIN = 'https://chat.example.org'

interface FakeWindow {
  url: string
  focused: boolean
  visibilityState: 'visible' | 'hidden'
  posted: unknown[]
  focusCalls: number
  refuseFocus?: boolean
  focus(): Promise<FakeWindow>
  postMessage(m: unknown): void
}

function windowClient(path: string, o: Partial<FakeWindow> = {}): FakeWindow {
  const w: FakeWindow = {
    url: ORIGIN + path, focused: false, visibilityState: 'hidden', posted: [], focusCalls: 0, ...o,
    async focus() {
      w.focusCalls++
      if (w.refuseFocus) throw new Error('InvalidAccessError')
      return w
    },
    postMessage(m) {
      w.posted.push(m)
    },
  }
  return w
}

/** Loads sw.js into a fresh fake worker global and returns its listeners and what it did. */
function worker(windows: FakeWindow[] = []) {
  const listeners = new Map<string, (e: unknown) => void>()
  const shown: { title: string; options: Record<string, unknown> }[] = []
  const opened: string[] = []
  const self = {
    location: new URL(ORIGIN + '/sw.js'),
    addEventListener: (type: string, f: (e: unknown) => void) => listeners.set(type, f),
    registration: {
      showNotification: async (title: string, options: Record<string, unknown>) => void shown.push({ title, options }),
    },
    clients: {
      matchAll: async (o: { type: string; includeUncontrolled: boolean }) => {
        expect(o).toEqual({ type: 'window', includeUncontrolled: true })
        return windows
      },
      openWindow: async (url: string) => void opened.push(url),
      claim: async () => undefined,
    },
    skipWaiting: async () => undefined,
  }
  runInNewContext(source, { self, URL, caches: {}, fetch: () => Promise.reject(new Error('no network in this test')) })
  /** Dispatches an extendable event and waits for what it waits on. */
  async function dispatch(type: string, extra: Record<string, unknown>) {
    const waits: Promise<unknown>[] = []
    listeners.get(type)!({ ...extra, waitUntil: (p: Promise<unknown>) => waits.push(p) })
    expect(waits).toHaveLength(1) // the browser keeps the worker alive until it is done
    await Promise.all(waits)
  }
  const push = (data: { json(): unknown } | null) => dispatch('push', { data })
  const click = () => {
    const notification = { closed: false, close() { notification.closed = true } }
    return dispatch('notificationclick', { notification }).then(() => notification)
  }
  return { push, click, shown, opened }
}

const payload = (v: unknown) => ({ json: () => (typeof v === 'string' ? JSON.parse(v) : v) })

describe('the service worker on a push', () => {
  it.each([
    ['the unread count', payload({ type: 'new_message', unread: 4 }), '4 unread messages'],
    ['one unread', payload({ type: 'new_message', unread: 1 }), 'New message'],
    ['no payload', null, 'New message'],
    ['a payload that is not JSON', payload('{not json'), 'New message'],
    ['another type', payload({ type: 'other', unread: 9 }), 'New message'],
    ['a count that is not a whole number', payload({ type: 'new_message', unread: '12; <b>x</b>' }), 'New message'],
  ])('shows "PrivateLine" and nothing readable for %s', async (_, data, body) => {
    const sw = worker()
    await sw.push(data)
    expect(sw.shown).toEqual([
      { title: 'PrivateLine', options: { body, tag: 'new-message', renotify: true, icon: '/icons/icon-192.png', data: { open: 'unread' } } },
    ])
  })
})

describe('the service worker on a notification click', () => {
  it('focuses the open window and tells it to open the newest unread conversation', async () => {
    const other = windowClient('/account')
    const visible = windowClient('/chat/x', { visibilityState: 'visible' })
    const sw = worker([other, visible])
    const n = await sw.click()
    expect(n.closed).toBe(true)
    expect(visible.focusCalls).toBe(1)
    expect(visible.posted).toEqual([{ type: 'open-unread' }])
    expect(other.posted).toEqual([])
    expect(sw.opened).toEqual([])
  })

  it('prefers the focused window', async () => {
    const focused = windowClient('/', { focused: true })
    const sw = worker([windowClient('/a', { visibilityState: 'visible' }), focused])
    await sw.click()
    expect(focused.posted).toEqual([{ type: 'open-unread' }])
  })

  it('opens /?open=unread when no window of the app is open', async () => {
    const sw = worker([])
    const n = await sw.click()
    expect(n.closed).toBe(true)
    expect(sw.opened).toEqual(['/?open=unread'])
  })

  it('opens a window when the open one may not be focused', async () => {
    const w = windowClient('/', { refuseFocus: true })
    const sw = worker([w])
    await sw.click()
    expect(w.posted).toEqual([])
    expect(sw.opened).toEqual(['/?open=unread'])
  })
})
