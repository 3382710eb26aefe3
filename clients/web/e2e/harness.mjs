// The browser end-to-end harness: a real homeserver process serving the
// built web client (clients/web/dist), Debian's Chromium driven by
// playwright-core, one browser context per user.
//
// It builds nothing: scripts/e2etest.sh builds the client and the
// homeserver and sets
//   PRIVATELINE_HOMESERVER  the homeserver binary (required)
//   PRIVATELINE_CLI         the privateline CLI binary (interop test)
//   CHROMIUM                the browser (default /usr/bin/chromium)
//   E2E_WEB_ROOT            the built client (default clients/web/dist)
//
// A test file calls suite() once; it starts the server and the browser
// before its tests and stops them after (also when a test fails), and
// returns e2e(name, fn): a node:test test whose fn gets a World (users,
// pages, the server). A test fails on any uncaught error in any of its
// pages; on failure every open page is saved as a PNG in a temporary
// directory whose path is printed.

import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import { chromium } from 'playwright-core'

/** The launch flags QUALITY.md prescribes. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export const webRoot = process.env.E2E_WEB_ROOT || fileURLToPath(new URL('../dist', import.meta.url))

/** The password every test user gets: long enough for any strength rule. */
export const PASSWORD = 'correct horse battery staple 42'

const STARTED = /"msg":"homeserver started".*?"addr":"(127\.0\.0\.1:\d+)"/

/**
 * Starts the homeserver binary on 127.0.0.1, port 0, with a fresh data
 * directory and the web client as WEB_ROOT; resolves once its start line
 * names the address. stop() kills it and removes the directory.
 */
export async function startHomeserver({ serverName = 'e2e.test', env = {} } = {}) {
  const bin = process.env.PRIVATELINE_HOMESERVER
  if (!bin) throw new Error('PRIVATELINE_HOMESERVER is not set: run the browser tests with scripts/e2etest.sh (it builds the homeserver)')
  if (!existsSync(bin)) throw new Error(`PRIVATELINE_HOMESERVER=${bin} does not exist: build it with go build -o ${bin} ./cmd/homeserver`)
  if (!existsSync(join(webRoot, 'index.html'))) throw new Error(`${webRoot} has no index.html: build the web client (npm run build in clients/web)`)
  const dataDir = mkdtempSync(join(tmpdir(), 'privateline-e2e-data-'))
  const child = spawn(bin, ['-env-file', '/dev/null'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PRIVATELINE_ENV: 'development',
      SERVER_NAME: serverName,
      DATA_DIR: dataDir,
      LISTEN_ADDR: '127.0.0.1:0',
      // An empty METRICS_ADDR counts as unset (the default port 9464,
      // which a second server would find taken): a port of its own.
      METRICS_ADDR: '127.0.0.1:0',
      WEB_ROOT: webRoot,
      // Many registrations and logins from one address in a few minutes.
      AUTH_RATE_PER_MINUTE: '60000',
      AUTH_RATE_BURST: '100000',
      LOGIN_RATE_PER_MINUTE: '60000',
      LOGIN_RATE_BURST: '100000',
      MESSAGE_RATE_PER_MINUTE: '600000',
      MESSAGE_RATE_BURST: '100000',
      ...env,
    },
  })
  const tail = []
  let exited = null
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve((exited = { code, signal }))))
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const addr = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stderr })
    lines.on('line', (line) => {
      tail.push(line)
      if (tail.length > 40) tail.shift()
      const m = STARTED.exec(line)
      if (m) resolve(m[1])
    })
    exit.then(({ code, signal }) =>
      reject(new Error(`the homeserver exited (${signal ?? code}) before listening; it logged:\n${tail.join('\n')}`)),
    )
    child.once('error', reject)
  })
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the homeserver did not start within 30 s; it logged:\n${tail.join('\n')}`)), 30_000)
  })
  const stop = async () => {
    process.removeListener('exit', killOnExit)
    if (!exited) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exit
      clearTimeout(t)
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    const address = await Promise.race([addr, timeout])
    return { url: `http://${address}`, serverName, stop, log: () => tail.join('\n') }
  } catch (err) {
    await stop()
    throw err
  } finally {
    clearTimeout(timer)
  }
}

/** Launches Chromium, failing loudly when it is not installed. */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM`)
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS })
}

let artifacts = null
/** The directory for failure screenshots, made (and printed) on first use. */
function artifactDir() {
  if (!artifacts) {
    artifacts = mkdtempSync(join(tmpdir(), 'privateline-e2e-failures-'))
    process.stderr.write(`e2e: screenshots of failed tests are in ${artifacts}\n`)
  }
  return artifacts
}

let userCount = 0
/** A username no other test (or earlier run on the same server) has used. */
export function uniqueName(base) {
  userCount++
  return `${base}${userCount}${Math.random().toString(36).slice(2, 6)}`
}

/**
 * Starts one homeserver and one browser for the calling test file and
 * returns e2e(name, fn, options) to declare its tests.
 */
export function suite({ server: serverOptions } = {}) {
  const shared = { server: null, browser: null }
  before(async () => {
    shared.browser = await launchChromium()
    shared.server = await startHomeserver(serverOptions)
  })
  after(async () => {
    await shared.browser?.close()
    await shared.server?.stop()
  })
  return function e2e(name, fn, { timeout = 120_000 } = {}) {
    test(name, { timeout }, async (t) => {
      const world = new World(shared.browser, shared.server, t)
      try {
        await fn(world)
        world.assertNoPageErrors()
      } catch (err) {
        await world.screenshot(name)
        world.report()
        throw err
      } finally {
        await world.close()
      }
    })
  }
}

/** One test's browser contexts and pages. */
export class World {
  constructor(browser, server, t) {
    this.browser = browser
    this.server = server
    this.t = t
    this.pages = [] // { label, page }
    this.contexts = []
    this.pageErrors = []
    this.consoleErrors = []
  }

  /** A new browser context (a separate profile: own storage, own service worker) and a page in it. */
  async newPage(label, contextOptions = {}) {
    const context = await this.browser.newContext({ baseURL: this.server.url, ...contextOptions })
    // Actions and waits without their own timeout give up after 20 s
    // (Playwright's default is 30 s); waits for key generation or delivery
    // say how long they allow.
    context.setDefaultTimeout(20_000)
    this.contexts.push(context)
    const page = await context.newPage()
    this.watch(label, page)
    return { context, page }
  }

  /** Watches a page for uncaught errors (which fail the test) and console errors (which are reported). */
  watch(label, page) {
    this.pages.push({ label, page })
    page.on('pageerror', (err) => this.pageErrors.push(`${label}: ${err.stack || err.message}`))
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.consoleErrors.push(`${label}: ${msg.text()}`)
    })
  }

  /** A user of the web client: a context of their own, a page at path, a unique username. */
  async user(base, path = '/') {
    const username = uniqueName(base)
    const { context, page } = await this.newPage(username)
    await page.goto(path)
    return { username, address: `${username}@${this.server.serverName}`, password: PASSWORD, context, page }
  }

  assertNoPageErrors() {
    if (this.pageErrors.length) {
      throw new Error(`uncaught errors in the page:\n${this.pageErrors.join('\n')}`)
    }
  }

  /** Prints what the pages and the server said, for a failure. */
  report() {
    if (this.pageErrors.length) this.t.diagnostic(`uncaught page errors:\n${this.pageErrors.join('\n')}`)
    if (this.consoleErrors.length) this.t.diagnostic(`console errors:\n${this.consoleErrors.join('\n')}`)
    this.t.diagnostic(`homeserver log (last lines):\n${this.server.log()}`)
  }

  async screenshot(testName) {
    const dir = artifactDir()
    const base = testName.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)
    for (const { label, page } of this.pages) {
      if (page.isClosed()) continue
      const path = join(dir, `${base}-${label}.png`)
      try {
        await page.screenshot({ path, fullPage: true, timeout: 5_000 })
        process.stderr.write(`e2e: saved ${path}\n`)
      } catch (err) {
        process.stderr.write(`e2e: no screenshot of ${label}: ${err.message}\n`)
      }
    }
  }

  async close() {
    for (const c of this.contexts) await c.close().catch(() => {})
  }
}

const axeSource = readFileSync(fileURLToPath(import.meta.resolve('axe-core/axe.min.js')), 'utf8')

/**
 * Runs axe-core on the page as it is now and fails with a readable list
 * when it finds a serious or critical violation. what names the screen.
 */
export async function expectAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    // Not page.addScriptTag({content}): the app's CSP (script-src 'self')
    // refuses inline scripts, as it should. Evaluated over the DevTools
    // protocol, the source is not subject to the page's CSP, which stays
    // on for the test (no bypassCSP).
    await page.evaluate(axeSource)
  }
  // Colours are measured as painted: let opening dialogs and drawers
  // finish fading in (a half-transparent dialog fails the contrast rule).
  await page.evaluate(async () => {
    for (let i = 0; i < 20; i++) {
      const running = document
        .getAnimations()
        .filter((a) => a.playState === 'running' && a.effect?.getComputedTiming().iterations !== Infinity)
      if (running.length === 0) return
      await Promise.all(running.map((a) => a.finished.catch(() => {})))
    }
  })
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }))
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  if (bad.length) {
    const lines = bad.map(
      (v) =>
        `- ${v.id} (${v.impact}): ${v.help}\n` +
        v.nodes
          .slice(0, 5)
          .map((n) => `    at ${n.target.join(' ')}: ${n.failureSummary?.split('\n').join(' ')}`)
          .join('\n'),
    )
    throw new Error(`${what}: ${bad.length} serious or critical accessibility violation(s):\n${lines.join('\n')}`)
  }
  return result
}
