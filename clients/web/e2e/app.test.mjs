// The web client as served by a real homeserver, in Chromium: the app at
// every route, the service worker's offline shell, the manifest and its
// icons, accessibility of what is on screen. These hold for any app
// screens (they do not look at the screens' content).

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { expectAccessible, startHomeserver, suite, uniqueName, webRoot } from './harness.mjs'
import { register, waitForMain, waitUntil } from './users.mjs'

const e2e = suite()

/**
 * Waits until the page is rendered by the app: the title set and visible
 * text in #root (the app may first show only a spinner while it looks for
 * a stored account).
 */
async function expectAppShell(page, what) {
  assert.equal(await page.title(), 'PrivateLine', `${what}: document title`)
  // (Locators, not waitForFunction: Playwright evaluates its predicate with
  // eval, which the app's CSP refuses.)
  await page
    .locator('#root')
    .filter({ hasText: /\S/ })
    .waitFor({ timeout: 15_000 })
    .catch(() => assert.fail(`${what}: #root shows no text`))
}

/** Every file of the build under /assets/ (not the source maps), from the directory itself. */
function buildAssets() {
  return readdirSync(join(webRoot, 'assets'))
    .filter((f) => !f.endsWith('.map'))
    .map((f) => '/assets/' + f)
}

/** Waits until a service worker controls the page and is active. */
async function waitForServiceWorker(page) {
  await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }))
    }
    if (reg.active?.state !== 'activated') {
      await new Promise((resolve) => reg.active.addEventListener('statechange', () => reg.active.state === 'activated' && resolve()))
    }
  })
}

/** The paths in the page's Cache Storage, by cache. */
function cachedPaths(page) {
  return page.evaluate(async () => {
    const out = {}
    for (const name of await caches.keys()) {
      const cache = await caches.open(name)
      out[name] = (await cache.keys()).map((r) => new URL(r.url).pathname)
    }
    return out
  })
}

e2e('the homeserver serves the app at / and at a deep route, with its security headers', async (w) => {
  const { page } = await w.newPage('visitor')
  for (const path of ['/', '/chat/' + encodeURIComponent('d:bob@e2e.test')]) {
    const res = await page.goto(path)
    assert.equal(res.status(), 200, `${path}: status`)
    assert.match(res.headers()['content-type'], /^text\/html/, `${path}: content type`)
    assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/, `${path}: CSP`)
    await expectAppShell(page, path)
    assert.equal(new URL(page.url()).origin, w.server.url, `${path}: left the server`)
  }
  await expectAccessible(page, 'the app at a deep route')
})

e2e('the manifest is valid, linked with a theme colour, and its icons load at their sizes', async (w) => {
  const { page } = await w.newPage('visitor')
  await page.goto('/')
  const href = await page.locator('link[rel="manifest"]').getAttribute('href')
  assert.equal(href, '/manifest.webmanifest')
  assert.match((await page.locator('meta[name="theme-color"]').getAttribute('content')) ?? '', /^#[0-9a-f]{6}$/i)

  const res = await page.request.get(href)
  assert.equal(res.status(), 200)
  assert.match(res.headers()['content-type'], /^application\/manifest\+json/)
  assert.equal(res.headers()['cache-control'], 'no-cache')
  const m = JSON.parse(await res.text())
  assert.equal(m.name, 'PrivateLine')
  assert.ok(m.short_name && m.short_name.length <= 12, `short_name ${m.short_name}`)
  assert.equal(m.start_url, '/')
  assert.equal(m.display, 'standalone')
  assert.match(m.theme_color, /^#[0-9a-f]{6}$/i)
  assert.match(m.background_color, /^#[0-9a-f]{6}$/i)

  const png = m.icons.filter((i) => i.type === 'image/png')
  for (const need of [
    { sizes: '192x192', purpose: 'any' },
    { sizes: '512x512', purpose: 'any' },
    { sizes: '512x512', purpose: 'maskable' },
  ]) {
    assert.ok(
      png.some((i) => i.sizes === need.sizes && (i.purpose ?? 'any').split(' ').includes(need.purpose)),
      `no ${need.purpose} PNG icon of ${need.sizes}`,
    )
  }
  // Every icon loads as an image of the size it claims (under the page's CSP).
  for (const icon of m.icons) {
    const size = await page.evaluate(async (src) => {
      const img = new Image()
      img.src = src
      await img.decode()
      return `${img.naturalWidth}x${img.naturalHeight}`
    }, icon.src)
    if (icon.sizes !== 'any') assert.equal(size, icon.sizes, `${icon.src}: decoded size`)
    else assert.notEqual(size, '0x0', `${icon.src}: decoded size`)
  }
})

e2e('the service worker keeps the app shell: with the server gone and the browser offline, a reload shows the app', async (w) => {
  // A server of its own, stopped half-way, so that "offline" is real for
  // the service worker too (not only Chromium's emulation in the page).
  const server = await startHomeserver()
  try {
    const { context, page } = await w.newPage('offline-visitor', { baseURL: server.url })
    await page.goto('/chat/' + encodeURIComponent('d:bob@e2e.test'))
    await expectAppShell(page, 'online')
    await waitForServiceWorker(page)
    // An API answer while online, through the service worker's page…
    const online = await page.evaluate(() => fetch('/api/keys/head').then((r) => r.status))
    assert.equal(online, 200)
    const sw = await page.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.active?.scriptURL)
    assert.equal(sw, server.url + '/sw.js')

    const cached = await cachedPaths(page)
    const names = Object.keys(cached)
    assert.equal(names.length, 1, `caches: ${names}`)
    assert.match(names[0], /^privateline-shell-v\d+$/)
    const paths = cached[names[0]]
    const scripts = await page.evaluate(() => [...document.scripts].map((s) => new URL(s.src).pathname).filter((p) => p))
    for (const p of ['/', '/manifest.webmanifest', ...scripts]) assert.ok(paths.includes(p), `${p} is not cached: ${paths}`)
    for (const p of paths) {
      assert.ok(p === '/' || p === '/manifest.webmanifest' || /^\/(assets|icons)\//.test(p), `unexpected cached ${p}`)
    }
    // Every chunk of the build is cached at install, the lazily loaded ones
    // too, including some this page has never asked for (the app is split).
    const assets = buildAssets()
    for (const p of assets) assert.ok(paths.includes(p), `${p} (a file of the build) is not cached: ${paths}`)
    const requested = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname))
    const neverLoaded = assets.filter((p) => p.endsWith('.js') && !requested.includes(p) && !scripts.includes(p))
    assert.ok(neverLoaded.length > 0, `every chunk was loaded by the sign-in page: ${assets}`)

    // Signed in (a new account), which loads the signed-in screens' code…
    await register(page, uniqueName('offline'))

    await server.stop()
    await context.setOffline(true)
    const res = await page.reload()
    assert.ok(res?.fromServiceWorker(), 'the reload was not answered by the service worker')
    await expectAppShell(page, 'offline reload')
    // …the stored session opens offline, on the main screen and on the
    // account screen, a route this visit had not shown (lazily loaded code).
    await waitForMain(page, 15_000)
    await page.getByRole('status').filter({ hasText: 'Offline' }).waitFor({ timeout: 15_000 })
    await page.goto('/account')
    await expectAppShell(page, 'offline /account')
    await page.getByRole('heading', { name: 'Account' }).waitFor({ timeout: 15_000 })
    // The chunks the first visit never loaded come from the cache offline.
    for (const p of neverLoaded) {
      const r = await page.evaluate((p) => import(p).then(() => 'loaded', (e) => String(e)), p)
      assert.equal(r, 'loaded', `${p} offline`)
    }
    // …is not kept: offline it fails like any request without a network.
    const api = await page.evaluate(() => fetch('/api/keys/head').then((r) => `status ${r.status}`, () => 'network error'))
    assert.equal(api, 'network error')
    await expectAccessible(page, 'the app shell offline')
  } finally {
    await server.stop()
  }
})

e2e('after a new build is deployed, the service worker keeps the new shell and drops the old build’s files', async (w) => {
  // A copy of the build to "deploy" over, served by a server of its own.
  const root = mkdtempSync(join(tmpdir(), 'privateline-e2e-webroot-'))
  cpSync(webRoot, root, { recursive: true })
  const server = await startHomeserver({ env: { WEB_ROOT: root } })
  try {
    const { context, page } = await w.newPage('returning-visitor', { baseURL: server.url })
    await page.goto('/')
    await waitForServiceWorker(page)
    const [oldScript] = await page.evaluate(() => [...document.scripts].map((s) => new URL(s.src).pathname).filter((p) => p))
    assert.match(oldScript, /^\/assets\//)
    assert.ok(Object.values(await cachedPaths(page)).flat().includes(oldScript))

    // The new build: the same code under a new content-hashed name, in
    // index.html and in the build's file list. Its files keep the old
    // ones' modification times, as a reproducible build's or an image
    // layer's do (and as a deploy within the same second does to
    // Last-Modified): the browser's revalidation must still see the change.
    const newScript = oldScript.replace(/^\/assets\//, '/assets/next-')
    renameSync(join(root, oldScript), join(root, newScript))
    for (const f of ['index.html', 'precache.json']) {
      const file = join(root, f)
      const text = readFileSync(file, 'utf8')
      const { atime, mtime } = statSync(file)
      assert.ok(text.includes(oldScript), `${f} does not name ${oldScript}`)
      writeFileSync(file, text.replaceAll(oldScript, newScript))
      utimesSync(file, atime, mtime)
    }

    await page.reload()
    await expectAppShell(page, 'the new build')
    const paths = await waitUntil(
      async () => {
        const p = Object.values(await cachedPaths(page)).flat()
        return p.includes(newScript) && !p.includes(oldScript) && p
      },
      { what: `the cache to hold ${newScript} and not ${oldScript}` },
    )
    assert.ok(paths.includes('/'))

    // And the new shell opens offline.
    await server.stop()
    await context.setOffline(true)
    await page.reload()
    await expectAppShell(page, 'the new build offline')
    assert.deepEqual(
      await page.evaluate(() => [...document.scripts].map((s) => new URL(s.src).pathname).filter((p) => p)),
      [newScript],
    )
  } finally {
    await server.stop()
    rmSync(root, { recursive: true, force: true })
  }
})

e2e('without the service worker the offline reload fails (the offline emulation is real)', async (w) => {
  const { context, page } = await w.newPage('no-sw', { serviceWorkers: 'block' })
  await page.goto('/')
  await expectAppShell(page, 'online')
  await context.setOffline(true)
  await assert.rejects(page.reload(), /ERR_INTERNET_DISCONNECTED/)
})

test('scripts/e2etest.sh fails loudly when chromium is missing', () => {
  const script = fileURLToPath(new URL('../../../scripts/e2etest.sh', import.meta.url))
  const r = spawnSync('bash', [script], { env: { ...process.env, CHROMIUM: '/nonexistent/chromium' }, encoding: 'utf8', timeout: 30_000 })
  assert.notEqual(r.status, 0, `exit status ${r.status}; stdout:\n${r.stdout}`)
  assert.match(r.stderr, /\/nonexistent\/chromium/)
  assert.match(r.stderr, /apt-get install chromium/)
})

e2e('the accessibility check reports serious violations by rule and element', async (w) => {
  const { page } = await w.newPage('a11y')
  await page.goto('/')
  await expectAccessible(page, 'the app')
  // The same page with an unlabelled image button: the check must catch it.
  await page.evaluate(() => {
    const b = document.createElement('button')
    b.id = 'nameless'
    b.append(Object.assign(document.createElement('img'), { src: '/icons/icon-192.png' }))
    document.body.append(b)
  })
  await assert.rejects(expectAccessible(page, 'a page with a nameless button'), (err) => {
    assert.match(err.message, /^a page with a nameless button: \d+ serious or critical/)
    assert.match(err.message, /button-name \(critical\)/)
    assert.match(err.message, /#nameless/)
    return true
  })
})
