// The engine's check of fork evidence made before a key rotation, on a
// device that only ever pinned the new key, against REAL homeservers:
// homeserver's TestForkEvidenceAfterRotation (Go, run here with `go test`)
// builds the scenario — b.test keeps evidence that a.test's directory
// forked, both heads signed with a's first key, and a has since rotated
// its key — and, with PRIVATELINE_FORK_HANDOFF set, lends this test b's
// URL and the address of a user on a until it is done. A new web account
// on b looks that user up (pinning a's new key alone) and opens the safety
// screen's directory part: the evidence verifies only under the earlier
// key a's new key names in its server document, which the engine fetches
// from b (GET /api/keys/forks/document) and passes to verifyFork.
// Without a Go toolchain this file fails: it never skips.
import 'fake-indexeddb/auto'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClosableEngine, createAuth } from '../src/engine'
import { cookieJar } from './homeserver'

const repo = fileURLToPath(new URL('../../..', import.meta.url))
const work = mkdtempSync(join(tmpdir(), 'pl-forkdoc-'))
const PW = 'correct horse battery staple'

let goTest: ChildProcess | undefined
let exited: Promise<number | null> = Promise.resolve(null)
const output: string[] = []
let handoff: { url: string; alice: string } = { url: '', alice: '' }
const engines: ClosableEngine[] = []

/** Waits until the Go test has written handoff.json, failing if it ends first. */
async function awaitHandoff(ms: number): Promise<void> {
  const file = join(work, 'handoff.json')
  const deadline = Date.now() + ms
  let ended = false
  void exited.then(() => (ended = true))
  for (;;) {
    if (existsSync(file)) {
      handoff = JSON.parse(readFileSync(file, 'utf8')) as typeof handoff
      return
    }
    if (ended) throw new Error('the Go test ended before handing its servers over:\n' + output.join('').slice(-4000))
    if (Date.now() > deadline) throw new Error('the Go test did not hand its servers over in time:\n' + output.join('').slice(-4000))
    await new Promise((r) => setTimeout(r, 100)) // polling a condition, not ordering
  }
}

beforeAll(async () => {
  goTest = spawn('go', ['test', '-count=1', '-timeout', '20m', '-run', '^TestForkEvidenceAfterRotation$', './homeserver/'], {
    cwd: repo,
    env: { ...process.env, PRIVATELINE_FORK_HANDOFF: work },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const keep = (b: Buffer) => {
    output.push(b.toString())
    if (output.length > 200) output.shift()
  }
  goTest.stdout!.on('data', keep)
  goTest.stderr!.on('data', keep)
  exited = new Promise((resolve) => {
    goTest!.once('exit', (code) => resolve(code))
    goTest!.once('error', (e) => (output.push(`go test could not run: ${e.message}\n`), resolve(null))) // no Go toolchain: fail, never skip
  })
  await awaitHandoff(600_000)
}, 660_000)

afterAll(async () => {
  for (const e of engines) e.close()
  writeFileSync(join(work, 'done'), '')
  const code = await exited
  rmSync(work, { recursive: true, force: true })
  // The Go side's own checks (bob's devices verify the evidence too) passed.
  expect(code, output.join('').slice(-4000)).toBe(0)
}, 120_000)

describe('fork evidence made before a key rotation, on a new device', () => {
  it('verifies under the earlier key that the forked server’s current key vouches for', async () => {
    const jar = cookieJar()
    const name = `webbob${Date.now() % 1_000_000}`
    const e = (await createAuth({
      baseUrl: handoff.url, fetch: jar.fetch, csrfCookie: jar.csrfCookie, WebSocket: globalThis.WebSocket,
      namespace: `pl-forkdoc-${name}`, locks: null, minBackoffMs: 100, maxBackoffMs: 800,
    }).register(name, PW)) as ClosableEngine
    engines.push(e)
    // The look-up pins a.test's current key: the only key this device knows for it.
    const info = await e.safety(handoff.alice)
    expect(info.directory).toEqual({
      vouchedBy: expect.any(Array),
      forks: [{ server: 'a.test', verified: true, reason: 'they are signed with a key a.test used before its current one, and its current key names that key as its own.' }],
    })
  }, 120_000)
})
