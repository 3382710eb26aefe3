// The engine across two REAL homeservers federated over QUIC on loopback
// (names localhost:<http port>, ports chosen before the start because each
// server's FEDERATION_PEERS names the other's UDP port): alice on the
// first, bob on the second, through createAuth() as the app does. A
// message with a file that bob's server never takes first waits for it
// ('waiting', naming the server), then (it is down for longer
// than FEDERATION_DELIVERY_TIMEOUT) fails with the reason; Retry sends it
// again whole, text and file, as one new message in its place: bob gets it
// once, opens the file (his server fetches it from alice's), and the
// failed one is gone from alice's server.
// Without a Go toolchain this file fails: it never skips.
import 'fake-indexeddb/auto'
import dgram from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../src/api/client'
import { login as apiLogin } from '../src/api/account'
import { type ClosableEngine, createAuth } from '../src/engine'
import type { EngineState } from '../src/engine/types'
import { waitFor } from './waitfor'
import { buildHomeserver, cookieJar, type Homeserver, startHomeserver } from './homeserver'

const PW = 'correct horse battery staple'
const work = mkdtempSync(join(tmpdir(), 'pl-fed-'))
let bin = ''

async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    const s = dgram.createSocket('udp4')
    await new Promise<void>((resolve, reject) => (s.once('error', reject), s.bind(0, '127.0.0.1', () => resolve())))
    const { port } = s.address()
    await new Promise<void>((resolve) => s.close(() => resolve()))
    return port
  }
  const s = net.createServer()
  await new Promise<void>((resolve, reject) => (s.once('error', reject), s.listen(0, '127.0.0.1', () => resolve())))
  const { port } = s.address() as net.AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

const http: number[] = []
const udp: number[] = []
const names: string[] = []
const servers: (Homeserver | undefined)[] = [undefined, undefined]

async function start(i: number): Promise<void> {
  const j = 1 - i
  servers[i] = await startHomeserver(bin, {
    DATA_DIR: join(work, `data${i}`),
    LISTEN_ADDR: `127.0.0.1:${http[i]}`,
    SERVER_NAME: names[i],
    FEDERATION_LISTEN_ADDR: `127.0.0.1:${udp[i]}`,
    FEDERATION_PEERS: `${names[j]}=127.0.0.1:${udp[j]}`,
    FEDERATION_DELIVERY_TIMEOUT: '5s',
  })
}

async function stop(i: number): Promise<void> {
  const s = servers[i]
  servers[i] = undefined
  await s?.stop()
}

type User = { name: string; address: string; b: ReturnType<typeof cookieJar>; e: ClosableEngine; server: number }
const users: Record<string, User> = {}

function auth(name: string, b: ReturnType<typeof cookieJar>, server: number) {
  return createAuth({
    baseUrl: `http://127.0.0.1:${http[server]}`, fetch: b.fetch, csrfCookie: b.csrfCookie, WebSocket: globalThis.WebSocket,
    namespace: `pl-fed-${name}`, locks: null, minBackoffMs: 100, maxBackoffMs: 800,
  })
}

const msgs = (s: EngineState, conv: string) => s.messages[conv] ?? []

beforeAll(async () => {
  bin = buildHomeserver(work)
  for (let i = 0; i < 2; i++) {
    http.push(await freePort('tcp'))
    udp.push(await freePort('udp'))
  }
  names.push(...http.map((p) => `localhost:${p}`))
  await start(0)
  await start(1)
  for (const [name, server] of [['alice', 0], ['bob', 1]] as const) {
    const b = cookieJar()
    const e = (await auth(name, b, server).register(name, PW)) as ClosableEngine
    users[name] = { name, address: `${name}@${names[server]}`, b, e, server }
  }
}, 300_000)

afterAll(async () => {
  for (const u of Object.values(users)) u.e.close()
  await stop(0)
  await stop(1)
  rmSync(work, { recursive: true, force: true })
})

describe('engine across two federated homeservers', () => {
  it('sends again a failed cross-server message with its file: one new message in its place, the file opens on the other server', async () => {
    const { alice, bob } = users
    const toBob = await alice.e.openDirect(bob.address)
    const toAlice = `d:${alice.address}`
    await alice.e.send(toBob, 'first, while both are up')
    await waitFor(bob.e, (s) => msgs(s, toAlice).some((m) => m.text === 'first, while both are up'), 'bob gets the first message')

    // Bob's server goes away for longer than its delivery timeout.
    await stop(1)
    const content = 'the minutes of the meeting\n'.repeat(200)
    const waiting = waitFor(alice.e, (s) => msgs(s, toBob).some((m) => m.text === 'with the minutes' && m.status === 'waiting'), 'the message waits for bob’s server', 60_000)
    await alice.e.send(toBob, 'with the minutes', { files: [new File([content], 'minutes.txt', { type: 'text/plain' })] })
    // Her server could not reach bob's: the message says it waits for it, not just "sent".
    const waitingMsg = msgs(await waiting, toBob).find((m) => m.text === 'with the minutes')!
    expect(waitingMsg.waitingFor).toEqual([names[1]])
    const failedState = await waitFor(alice.e, (s) => msgs(s, toBob).some((m) => m.text === 'with the minutes' && m.status === 'failed'), 'the message fails', 90_000)
    const failed = msgs(failedState, toBob).find((m) => m.text === 'with the minutes')!
    expect(failed.error).toMatch(new RegExp(`^Not delivered: ${names[1]} could not be reached for too long`))
    expect(failed.attachments).toMatchObject([{ name: 'minutes.txt', mime: 'text/plain', size: content.length }])
    expect(failed.waitingFor).toBeUndefined()

    // Bob's server is back; his message opens the link both ways at once.
    await start(1)
    await waitFor(bob.e, (s) => s.connection === 'online', 'bob online again', 60_000)
    await bob.e.send(toAlice, 'back again')
    await waitFor(alice.e, (s) => msgs(s, toBob).some((m) => m.text === 'back again'), 'alice gets bob’s message')

    await alice.e.retry(failed.id)
    // At once: one message in the failed one's place, on its way, with the file.
    const now = msgs(alice.e.getState(), toBob).filter((m) => m.text === 'with the minutes')
    expect(now).toHaveLength(1)
    expect(now[0].id).not.toBe(failed.id)
    expect(now[0].status).not.toBe('failed')
    expect(now[0].attachments).toEqual(failed.attachments)

    const sa = await waitFor(alice.e, (s) => msgs(s, toBob).some((m) => m.text === 'with the minutes' && m.status === 'delivered'), 'the retry delivered', 60_000)
    expect(msgs(sa, toBob).filter((m) => m.text === 'with the minutes')).toHaveLength(1)
    const sb = await waitFor(bob.e, (s) => msgs(s, toAlice).some((m) => m.text === 'with the minutes'), 'bob gets the retry', 60_000)
    const got = msgs(sb, toAlice).filter((m) => m.text === 'with the minutes')
    expect(got).toHaveLength(1)
    expect(got[0].attachments).toMatchObject([{ name: 'minutes.txt', mime: 'text/plain', size: content.length }])
    // His server fetches the file from alice's, which still has it: the retry lists it.
    const blob = await bob.e.openAttachment(got[0].id, got[0].attachments[0].fileId)
    expect(await blob.text()).toBe(content)

    // The failed message is gone from alice's server (deleted for everyone); the retry stays.
    const api = new ApiClient({ baseUrl: `http://127.0.0.1:${http[0]}`, mode: 'body', locks: null })
    await apiLogin(api, 'alice', PW)
    const history = await api.get<{ messages: { envelope: { header: { id: string } } }[] }>(`/api/messages?with=${encodeURIComponent(bob.address)}&limit=100`)
    const ids = history.messages.map((m) => m.envelope.header.id)
    expect(ids).not.toContain(failed.id)
    expect(ids).toContain(got[0].id)
    // And nothing brings it back on alice's device: the history again, after a reload.
    await alice.e.loadHistory(toBob)
    expect(msgs(alice.e.getState(), toBob).filter((m) => m.text === 'with the minutes').map((m) => m.id)).toEqual([got[0].id])
    // Bob's history has it once too.
    await bob.e.loadHistory(toAlice)
    expect(msgs(bob.e.getState(), toAlice).filter((m) => m.text === 'with the minutes')).toHaveLength(1)
  })
})
