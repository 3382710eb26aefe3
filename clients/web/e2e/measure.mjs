// Measures the web client as users feel it, in Chromium against a real
// homeserver, and prints:
//   1. the initial JavaScript, gzipped: the scripts and module preloads
//      dist/index.html references (what the browser fetches before the
//      app can start; chunks the app imports lazily are not in it), each
//      compressed with Node's zlib; and the total of every .js file of
//      the build, for comparison (what the service worker caches);
//   2. navigation → usable login form (the "Sign in" button enabled),
//      median of N fresh profiles (cold: nothing cached), and of N reloads
//      of one profile (warm: the service worker's cache);
//   3. click on "Sign in" → the first conversation shown in the sidebar,
//      median of N logins, each in a fresh profile;
//   4. send → render between two browsers: from the click on "Send" in one
//      page to the message appearing in the other's message list,
//      median and p95 over M messages (both pages on this machine's clock).
//
// Usage (from clients/web, after building the client and the homeserver):
//
//   npm run build
//   go build -o /tmp/pl-homeserver ../../cmd/homeserver
//   PRIVATELINE_HOMESERVER=/tmp/pl-homeserver node e2e/measure.mjs [--runs 5] [--messages 20]
//
// It starts its own homeserver (like the tests). Items 2–4 need the
// screens and the engine; without them it prints item 1 and exits with
// an error that says what is missing. CHROMIUM overrides the browser.

import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import { PASSWORD, launchChromium, startHomeserver, uniqueName, webRoot } from './harness.mjs'
import { conversationLink, fillLogin, openConversation, register, send, startChat, waitForMain } from './users.mjs'

const { values: opts } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, messages: { type: 'string', default: '20' } },
})
const RUNS = Number(opts.runs)
const MESSAGES = Number(opts.messages)

const ms = (x) => `${x.toFixed(0)} ms`
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]
}
const median = (xs) => quantile(xs, 0.5)

/** 1. The JavaScript index.html loads before anything else, gzipped. */
function initialJavaScript() {
  const html = readFileSync(join(webRoot, 'index.html'), 'utf8')
  const files = new Set()
  for (const m of html.matchAll(/<script[^>]*\ssrc="([^"]+\.js)"/g)) files.add(m[1])
  for (const m of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+\.js)"/g)) files.add(m[1])
  if (files.size === 0) throw new Error(`${webRoot}/index.html references no script`)
  return { files: [...files], ...sizes([...files]) }
}

/** All the JavaScript of the build (dist/assets/*.js), gzipped file by file. */
function allJavaScript() {
  const files = readdirSync(join(webRoot, 'assets'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => '/assets/' + f)
  return { files, ...sizes(files) }
}

function sizes(files) {
  let raw = 0
  let gz = 0
  for (const f of files) {
    const b = readFileSync(join(webRoot, f))
    raw += b.length
    gz += gzipSync(b, { level: 9 }).length
  }
  return { raw, gz }
}

/**
 * Navigates to /login and returns the page's own time (performance.now(),
 * from the start of the navigation) at which a "Sign in" button is first
 * enabled.
 */
async function timeToLoginForm(page) {
  await page.goto('/login', { waitUntil: 'commit' })
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const ready = () =>
          [...document.querySelectorAll('button')].some((b) => b.textContent?.trim() === 'Sign in' && !b.disabled)
        const check = () => {
          if (ready()) {
            obs.disconnect()
            resolve(performance.now())
          }
        }
        const obs = new MutationObserver(check)
        obs.observe(document, { subtree: true, childList: true, attributes: true, characterData: true })
        check()
        setTimeout(() => reject(new Error('no enabled "Sign in" button within 30 s: are the screens (src/ui) in this build?')), 30_000)
      }),
  )
}

/** Resolves with the epoch time (ms, high resolution) when an article with text appears in the page. */
function whenRendered(page, text) {
  return page.evaluate(
    (text) =>
      new Promise((resolve, reject) => {
        const log = () => document.querySelector('[role="log"]')
        const found = () => [...(log()?.querySelectorAll('[role="article"]') ?? [])].some((a) => a.textContent?.includes(text))
        const now = () => performance.timeOrigin + performance.now()
        if (found()) return resolve(now())
        const obs = new MutationObserver(() => {
          if (found()) {
            obs.disconnect()
            resolve(now())
          }
        })
        obs.observe(document.body, { subtree: true, childList: true, characterData: true })
        setTimeout(() => reject(new Error(`"${text}" was not rendered within 30 s`)), 30_000)
      }),
    text,
  )
}

const server = await startHomeserver()
const browser = await launchChromium()
const contexts = []
const newPage = async () => {
  const c = await browser.newContext({ baseURL: server.url })
  contexts.push(c)
  return { context: c, page: await c.newPage() }
}
let failed = false
try {
  const js = initialJavaScript()
  console.log(`initial JavaScript: ${(js.gz / 1024).toFixed(1)} KiB gzipped (${(js.raw / 1024).toFixed(1)} KiB raw) in ${js.files.join(', ')}`)
  const all = allJavaScript()
  console.log(`all JavaScript of the build: ${(all.gz / 1024).toFixed(1)} KiB gzipped (${(all.raw / 1024).toFixed(1)} KiB raw) in ${all.files.length} files`)

  // 2. Navigation → usable login form.
  const cold = []
  for (let i = 0; i < RUNS; i++) {
    const { context, page } = await newPage()
    cold.push(await timeToLoginForm(page))
    await context.close()
  }
  const { page: warmPage } = await newPage()
  await timeToLoginForm(warmPage)
  await warmPage.evaluate(async () => {
    await navigator.serviceWorker?.ready
  })
  const warm = []
  for (let i = 0; i < RUNS; i++) warm.push(await timeToLoginForm(warmPage))
  console.log(`navigation → "Sign in" enabled: median ${ms(median(cold))} cold (fresh profile), ${ms(median(warm))} warm (service worker cache); ${RUNS} runs each`)

  // Two users with a conversation.
  const alice = { name: uniqueName('alice'), ...(await newPage()) }
  const bob = { name: uniqueName('bob'), ...(await newPage()) }
  await alice.page.goto('/register')
  await register(alice.page, alice.name)
  await bob.page.goto('/register')
  await register(bob.page, bob.name)
  const aliceAddr = `${alice.name}@${server.serverName}`
  const bobAddr = `${bob.name}@${server.serverName}`
  await startChat(bob.page, aliceAddr)
  await send(bob.page, 'hello')
  await openConversation(alice.page, bobAddr)

  // 3. Sign in → first conversation shown (Alice on a new device each time).
  const login = []
  for (let i = 0; i < RUNS; i++) {
    const { context, page } = await newPage()
    await page.goto('/login')
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    const t0 = performance.now()
    await fillLogin(page, alice.name, PASSWORD) // fills, then clicks
    await conversationLink(page, bobAddr).waitFor({ timeout: 60_000 })
    login.push(performance.now() - t0)
    await waitForMain(page)
    await context.close()
  }
  console.log(`"Sign in" → first conversation shown: median ${ms(median(login))} over ${RUNS} logins (fresh profiles; includes the password KDF and key unwrapping)`)

  // 4. Send → render between the two browsers.
  await alice.page.evaluate(() => {
    document.addEventListener('click', () => (window.__plClickAt = performance.timeOrigin + performance.now()), { capture: true })
  })
  const latency = []
  for (let i = 0; i < MESSAGES; i++) {
    const text = `latency probe ${i} ${Date.now()}`
    const rendered = whenRendered(bob.page, text)
    await alice.page.getByRole('textbox', { name: 'Message' }).fill(text)
    await alice.page.getByRole('button', { name: 'Send' }).click()
    const at = await rendered
    const clicked = await alice.page.evaluate(() => window.__plClickAt)
    latency.push(at - clicked)
  }
  console.log(`send → render in the other browser: median ${ms(median(latency))}, p95 ${ms(quantile(latency, 0.95))} over ${MESSAGES} messages`)
} catch (err) {
  failed = true
  console.error(`measure: ${err.message}`)
} finally {
  for (const c of contexts) await c.close().catch(() => {})
  await browser.close()
  await server.stop()
}
process.exit(failed ? 1 : 0)
