// The web engine against a REAL homeserver whose identity key is rotated
// (`homeserver rotate-key`, docs/federation.md "Rotating a key") between
// two runs on the same data directory: clients that pinned the old
// directory key follow the key-change statements in the answers and pin
// the new key; an altered statement is refused. Without a Go toolchain
// this file fails: it never skips.
import 'fake-indexeddb/auto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClosableEngine, createAuth } from '../src/engine'
import type { EngineState } from '../src/engine/types'
import { waitFor } from './waitfor'
import { buildHomeserver, cookieJar, type Homeserver, startHomeserver } from './homeserver'

const SERVER = 'rotate.test'
const PW = 'correct horse battery staple'
const work = mkdtempSync(join(tmpdir(), 'pl-rotate-'))
const dataDir = join(work, 'data')
const env = { DATA_DIR: dataDir, SERVER_NAME: SERVER }
let bin = ''
let base = ''
let port = 0
let server: Homeserver | undefined

type Jar = ReturnType<typeof cookieJar>
const engines: ClosableEngine[] = []

function auth(name: string, b: Jar, fetch: typeof globalThis.fetch = b.fetch) {
  return createAuth({
    baseUrl: base, fetch, csrfCookie: b.csrfCookie, WebSocket: globalThis.WebSocket, namespace: `pl-rot-${name}`,
    locks: null, minBackoffMs: 100, maxBackoffMs: 800,
  })
}

const dm = (name: string) => `d:${name}@${SERVER}`
const has = (s: EngineState, conv: string, text: string) => (s.messages[conv] ?? []).some((m) => m.text === text)

async function register(name: string): Promise<{ b: Jar; e: ClosableEngine }> {
  const b = cookieJar()
  const e = (await auth(name, b).register(name, PW, () => undefined)) as ClosableEngine
  engines.push(e)
  await waitFor(e, (s) => s.connection === 'online', `${name} online`)
  return { b, e }
}

/** Flips a bit of the first key-change statement's signature in every answer that carries one. */
function tampering(f: typeof globalThis.fetch): typeof globalThis.fetch {
  return async (input, init) => {
    const r = await f(input, init)
    const text = await r.text()
    let out = text
    try {
      const m = JSON.parse(text) as { key_changes?: { signature: string }[] }
      const st = m.key_changes?.[0]
      if (st) {
        st.signature = (st.signature[0] === 'A' ? 'B' : 'A') + st.signature.slice(1)
        out = JSON.stringify(m)
      }
    } catch {
      // not JSON
    }
    return new Response(out, { status: r.status, statusText: r.statusText, headers: r.headers })
  }
}

beforeAll(async () => {
  bin = buildHomeserver(work)
  server = await startHomeserver(bin, { ...env, LISTEN_ADDR: '127.0.0.1:0' })
  base = 'http://' + server.addr
  port = Number(server.addr.split(':')[1])
}, 300_000)

afterAll(async () => {
  for (const e of engines) e.close()
  await server?.stop()
  rmSync(work, { recursive: true, force: true })
})

describe('rotating the homeserver key', () => {
  it('keeps clients that pinned the old key working, and refuses an altered statement', async () => {
    const alice = await register('alice')
    const bob = await register('bob')
    await alice.e.send(await alice.e.openDirect('bob'), 'before the rotation')
    await waitFor(bob.e, (s) => has(s, dm('alice'), 'before the rotation'), 'bob receives')
    const before = await (await fetch(`${base}/api/keys/head`)).json() as { server_key: string; key_changes?: unknown }
    expect(before.key_changes).toBeUndefined()

    await server!.stop()
    const out = execFileSync(bin, ['-env-file', '/dev/null', 'rotate-key'], {
      env: { PATH: process.env.PATH ?? '', PRIVATELINE_ENV: 'development', ...env }, encoding: 'utf8',
    })
    expect(out).toContain('Rotated the identity key of rotate.test')
    server = await startHomeserver(bin, { ...env, LISTEN_ADDR: `127.0.0.1:${port}` })
    const after = await (await fetch(`${base}/api/keys/head`)).json() as { server_key: string; key_changes?: { old_key: string; new_key: string }[] }
    expect(after.server_key).not.toBe(before.server_key)
    expect(after.key_changes).toEqual([expect.objectContaining({ old_key: before.server_key, new_key: after.server_key })])

    // A device that pinned the old key, shown the statement altered: refused.
    await expect(auth('bob', bob.b, tampering(bob.b.fetch)).serverName()).rejects.toThrow(/another key than before/)
    // The same device, shown the statement as the server sent it: follows it.
    expect(await auth('bob', bob.b).serverName()).toBe(SERVER)

    // The running engines (old pin) look up a user registered under the
    // new key, and the messages flow.
    await waitFor(alice.e, (s) => s.connection === 'online', 'alice online again')
    await waitFor(bob.e, (s) => s.connection === 'online', 'bob online again')
    const carol = await register('carol')
    await alice.e.send(await alice.e.openDirect('carol'), 'after the rotation')
    await waitFor(carol.e, (s) => has(s, dm('alice'), 'after the rotation'), 'carol receives')
    await carol.e.send(dm('alice'), 'carol answers')
    await waitFor(alice.e, (s) => has(s, dm('carol'), 'carol answers'), 'alice receives')
    // The safety screen checks the own directory's head (and its
    // co-signatures) under the pin: it follows the chain too, no error.
    expect((await bob.e.safety(`alice@${SERVER}`)).directory).toEqual({ vouchedBy: [], forks: [] })
  }, 120_000)
})
