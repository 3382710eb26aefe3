// PrivateLine's service worker: keeps the app shell (index.html, the
// hashed files it loads, the manifest and the icons) so that the app opens
// without a network, and shows the "New message" notifications of Web Push
// (see "Notifications" below). It is served as is from public/ (no build
// step) and registered by src/sw.ts in production builds only.
//
// What it does, by request:
//   - /api/… (and the WebSocket under it): never intercepted, never cached.
//     Nothing with an Authorization header, nothing answered with
//     Cache-Control no-store or private, and no HTML under /assets/ is cached
//     either: messages, keys and tokens never reach Cache Storage.
//   - navigations (any app route): the network first; without a network
//     (or when a proxy answers 502/503/504), the cached index.html.
//   - /assets/…: their names carry a content hash, so they never change:
//     the cache first, else the network (and then cached).
//   - /manifest.webmanifest and /icons/…: the network, else the cache.
//
// The shell is index.html, the files it names, and every file of the
// build under /assets/ as listed by /precache.json (written by the build,
// see vite.config.ts): the chunks the app imports lazily (the signed-in
// screens, the engine, the QR code reader) are cached at install too, so
// the app opens offline on screens the first visit never showed. The shell
// is fetched without credentials (it is the same for everyone). On install
// it is cached whole (index.html last, so a cached index.html never names a
// file that is not cached); the install fails, to be tried again later, if
// any part cannot be fetched. When a navigation brings an index.html other
// than the cached one (a new build: any change to a chunk changes the
// entry's hash, so index.html too), the shell is fetched again and every
// cached /assets/ file the new build does not list is dropped.
//
// SHELL_VERSION is the version of this file's cache layout: raise it when
// the layout changes, and activate deletes the caches of other versions.
//
// Notifications. The app subscribes through this worker's registration
// (src/engine/push.ts) and registers the subscription with the homeserver,
// which pushes, when a message arrives while none of the user's WebSockets
// is open, exactly {"type":"new_message","unread":n} (encrypted to this
// browser, RFC 8291). There is no sender and no text to show, and this
// worker is told nothing about messages: on push it shows "New message"
// ("n unread messages" when n > 1), one notification at a time (tag
// new-message; a later push replaces it and alerts again), also when the
// payload is missing or unreadable. A click closes it and focuses a window
// of the app, telling it {type: "open-unread"} (src/ui/openUnread.ts), or
// opens one at /?open=unread; the app then opens the conversation holding
// the newest unread message once it is in step with the server. A changed
// subscription (pushsubscriptionchange) is not handled here: the app
// registers its subscription again on every start.

const SHELL_VERSION = 1
const CACHE_PREFIX = 'privateline-shell-'
const CACHE = CACHE_PREFIX + 'v' + SHELL_VERSION
const INDEX = '/'
const PRECACHE = '/precache.json'

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE)
      await refreshShell(cache)
      await self.skipWaiting()
    })(),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name)
      }
      await self.clients.claim()
    })(),
  )
})

self.addEventListener('fetch', (event) => {
  const req = event.request
  if (req.method !== 'GET') return
  const url = new URL(req.url)
  if (url.origin !== self.location.origin) return
  if (url.pathname === '/api' || url.pathname.startsWith('/api/')) return
  if (req.headers.has('Authorization')) return
  if (req.mode === 'navigate') {
    event.respondWith(navigate(event))
  } else if (url.pathname.startsWith('/assets/')) {
    event.respondWith(immutable(req))
  } else if (url.pathname === '/manifest.webmanifest' || url.pathname.startsWith('/icons/')) {
    event.respondWith(networkThenCache(req, url.pathname))
  }
})

const NOTIFICATION_TAG = 'new-message'
const OPEN_UNREAD = 'open-unread' // the message src/ui/openUnread.ts listens for

self.addEventListener('push', (event) => {
  const n = unreadCount(event.data)
  event.waitUntil(
    self.registration.showNotification('PrivateLine', {
      body: n > 1 ? `${n} unread messages` : 'New message',
      tag: NOTIFICATION_TAG,
      renotify: true,
      icon: '/icons/icon-192.png',
      data: { open: 'unread' },
    }),
  )
})

/** The unread count of a push's payload, or 0 when it has none (or not the homeserver's form). */
function unreadCount(data) {
  if (!data) return 0
  try {
    const p = data.json()
    if (p && p.type === 'new_message' && Number.isSafeInteger(p.unread) && p.unread > 0) return p.unread
  } catch {
    // not JSON: still a new message
  }
  return 0
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  event.waitUntil(openUnread())
})

/** Focuses a window of the app and tells it to open the newest unread conversation, or opens one that will. */
async function openUnread() {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true })
  const mine = windows.filter((c) => new URL(c.url).origin === self.location.origin)
  const target = mine.find((c) => c.focused) || mine.find((c) => c.visibilityState === 'visible') || mine[0]
  if (target) {
    try {
      const focused = await target.focus()
      ;(focused || target).postMessage({ type: OPEN_UNREAD })
      return
    } catch {
      // not allowed to focus it: a new window instead
    }
  }
  await self.clients.openWindow('/?open=unread')
}

/** Navigations: the network first, the cached index.html without one. */
async function navigate(event) {
  let res
  try {
    res = await fetch(event.request)
  } catch (err) {
    const cached = await caches.match(INDEX, { cacheName: CACHE, ignoreVary: true })
    if (cached) return cached
    throw err
  }
  if (res.ok && isHTML(res)) {
    event.waitUntil(refreshIfChanged(res.clone()).catch(() => {}))
  } else if (res.status === 502 || res.status === 503 || res.status === 504) {
    const cached = await caches.match(INDEX, { cacheName: CACHE, ignoreVary: true })
    if (cached) return cached
  }
  return res
}

/** /assets/…: immutable, so the cache first. */
async function immutable(req) {
  const cache = await caches.open(CACHE)
  // ignoreVary: the server answers every request with Vary: Origin, and a
  // module script's request carries an Origin the shell's fetch did not.
  const hit = await cache.match(req, { ignoreVary: true })
  if (hit) return hit
  const res = await fetch(req)
  if (cacheable(res)) await cache.put(req, res.clone())
  return res
}

async function networkThenCache(req, path) {
  try {
    return await fetch(req)
  } catch (err) {
    const cached = await caches.match(path, { cacheName: CACHE, ignoreVary: true })
    if (cached) return cached
    throw err
  }
}

/** Fetches the shell again when a navigation brought a new index.html. */
async function refreshIfChanged(fresh) {
  const cache = await caches.open(CACHE)
  const cached = await cache.match(INDEX, { ignoreVary: true })
  if (cached && (await cached.text()) === (await fresh.text())) return
  await refreshShell(cache)
}

/**
 * Caches index.html, every file of the shell it names and every build file
 * precache.json lists; drops the cached /assets/ files of older builds.
 */
async function refreshShell(cache) {
  const index = await fetch(INDEX, { cache: 'no-cache', credentials: 'omit' })
  if (!index.ok || !isHTML(index)) throw new Error(`the app shell (index.html) answered ${index.status}`)
  const list = await fetch(PRECACHE, { cache: 'no-cache', credentials: 'omit' })
  if (!list.ok || isHTML(list)) throw new Error(`the list of the app's files (${PRECACHE}) answered ${list.status}${list.ok ? ' with HTML (not in this build)' : ''}`)
  const listed = (await list.json()).files
  if (!Array.isArray(listed) || !listed.every((p) => typeof p === 'string' && p.startsWith('/assets/'))) {
    throw new Error(`${PRECACHE} is not a list of /assets/ files`)
  }
  const files = [...new Set([...shellFiles(await index.clone().text()), ...listed])]
  await Promise.all(
    files.map(async (path) => {
      if (path.startsWith('/assets/') && (await cache.match(path, { ignoreVary: true }))) return
      const res = await fetch(path, { cache: 'no-cache', credentials: 'omit' })
      if (!cacheable(res)) throw new Error(`the app shell file ${path} answered ${res.status}`)
      await cache.put(path, res)
    }),
  )
  await cache.put(INDEX, index)
  // The older builds' files, those their index.html named and those their
  // pages loaded lazily alike.
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname
    if (path.startsWith('/assets/') && !files.includes(path)) await cache.delete(req)
  }
}

/** The same-origin files index.html loads: scripts, styles, preloads, manifest, icons. */
function shellFiles(html) {
  const files = new Set(['/manifest.webmanifest'])
  for (const m of html.matchAll(/\s(?:src|href)="([^"]+)"/g)) {
    const url = new URL(m[1], self.location.origin)
    if (url.origin !== self.location.origin || url.search) continue
    const p = url.pathname
    if (p.startsWith('/assets/') || p.startsWith('/icons/') || p === '/manifest.webmanifest') files.add(p)
  }
  return [...files]
}

function isHTML(res) {
  return (res.headers.get('Content-Type') || '').startsWith('text/html')
}

/** Whether a response may be kept: a same-origin 200 that allows storing, and not the app's HTML fallback. */
function cacheable(res) {
  if (!res || res.status !== 200 || res.type !== 'basic') return false
  const cc = (res.headers.get('Cache-Control') || '').toLowerCase()
  if (cc.includes('no-store') || cc.includes('private')) return false
  return !isHTML(res)
}
