// The engine against a REAL homeserver: built from this repository with
// `go build`, started on 127.0.0.1 port 0 with a fresh data directory, and
// driven by three users through createAuth() exactly as the app does
// (cookie sessions, WebSocket by ticket, IndexedDB through fake-indexeddb).
// Without a Go toolchain this file fails: it never skips.
import 'fake-indexeddb/auto'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDB } from 'idb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from '../src/api/client'
import { login as apiLogin } from '../src/api/account'
import { generateKeys, wrapPrivateKeys } from '../src/crypto/account'
import { makeKeyBundle, signKeyChange } from '../src/crypto/bundle'
import { toB64 } from '../src/crypto/bytes'
import { type ClosableEngine, createAuth } from '../src/engine'
import type { EngineState } from '../src/engine/types'
import { waitFor } from './waitfor'
import { buildHomeserver, cookieJar, type Homeserver, startHomeserver } from './homeserver'

const SERVER = 'engine.test'
const PW = 'correct horse battery staple'
const MARKER = 'PLAINTEXT-MARKER-5e1f0c'
const work = mkdtempSync(join(tmpdir(), 'pl-engine-'))
const dataDir = join(work, 'data')
let bin = ''

let base = ''
let port = 0
/** Every request body any client sent, to check that no plaintext left the device. */
const sent: string[] = []

let server: Homeserver | undefined

async function startServer(listen: string): Promise<string> {
  // JWT_SECRET_KEY, AES_KEY: generated into DATA_DIR, so kept across restarts.
  server = await startHomeserver(bin, { DATA_DIR: dataDir, LISTEN_ADDR: listen, SERVER_NAME: SERVER })
  return server.addr
}

async function stopServer(): Promise<void> {
  const s = server
  server = undefined
  await s?.stop()
}

/** The ids of the files uploaded (POST /api/files), in order. */
const uploads: string[] = []

/** A browser's cookie jar; records every request body and the ids of uploaded files. */
const browser = () => {
  const j = cookieJar((b) => sent.push(b))
  const f: typeof fetch = async (input, init) => {
    const r = await j.fetch(input, init)
    if (init?.method === 'POST' && String(input).endsWith('/api/files') && r.ok) uploads.push(((await r.clone().json()) as { id: string }).id)
    return r
  }
  return { ...j, fetch: f }
}

type User = { name: string; address: string; b: ReturnType<typeof browser>; e: ClosableEngine }
const users: Record<string, User> = {}

function auth(u: { name: string; b: ReturnType<typeof browser> }) {
  return createAuth({
    baseUrl: base, fetch: u.b.fetch, csrfCookie: u.b.csrfCookie, WebSocket: globalThis.WebSocket, namespace: `pl-${u.name}`,
    locks: null, minBackoffMs: 100, maxBackoffMs: 800,
  })
}

const msgs = (s: EngineState, conv: string) => s.messages[conv] ?? []
const dm = (name: string) => `d:${name}@${SERVER}`

/** Every value of every IndexedDB database, as text (bytes decoded as Latin-1). */
async function dumpIndexedDB(): Promise<{ names: string[]; text: string }> {
  const names = (await indexedDB.databases()).map((d) => d.name!)
  let text = ''
  const walk = (v: unknown): void => {
    if (v === null || v === undefined) return
    if (typeof v === 'string') text += v + '\n'
    else if (v instanceof Uint8Array) text += Buffer.from(v).toString('latin1') + '\n' + Buffer.from(v).toString('utf8') + '\n'
    else if (Array.isArray(v)) v.forEach(walk)
    else if (typeof v === 'object' && !(v instanceof CryptoKey)) for (const [k, x] of Object.entries(v)) (text += k + '\n', walk(x))
  }
  for (const n of names) {
    const db = await openDB(n)
    for (const s of db.objectStoreNames) {
      walk(await db.getAll(s))
      walk(await db.getAllKeys(s))
    }
    db.close()
  }
  return { names, text }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? filesUnder(p) : [p]
  })
}

/** Replaces an account's keys on the server (PUT /api/keys, §6.3), as another device would. */
async function changeKeysOnServer(name: string): Promise<void> {
  const api = new ApiClient({ baseUrl: base, mode: 'body', locks: null })
  const acc = await apiLogin(api, name, PW)
  const next = await generateKeys(acc.address)
  const nb = await makeKeyBundle(next.keys, Math.max(Date.now(), acc.bundle.createdAt + 1))
  const sig = await signKeyChange(acc.keys, acc.bundle, nb)
  const w = await wrapPrivateKeys(acc.kek, acc.address, next.ed25519Pkcs8, next.rsaPkcs8)
  const body = JSON.stringify({ encrypted_private_key: toB64(w.encryptedPrivateKey), nonce: toB64(w.nonce), old_key_signature: toB64(sig) })
  await api.request('PUT', '/api/keys', { rawBody: body.slice(0, -1) + ',"key_bundle":' + new TextDecoder().decode(nb.json) + '}' })
}

beforeAll(async () => {
  bin = buildHomeserver(work)
  const addr = await startServer('127.0.0.1:0')
  base = 'http://' + addr
  port = Number(addr.split(':')[1])
  if (typeof globalThis.WebSocket !== 'function') throw new Error('no WebSocket in this Node (vite.config.ts passes --experimental-websocket)')
}, 300_000)

afterAll(async () => {
  for (const u of Object.values(users)) u.e.close()
  await stopServer()
  rmSync(work, { recursive: true, force: true })
})

describe('engine against a real homeserver', () => {
  it('reads the server name from the signed directory head, registers three users and logs them in', async () => {
    const a = auth({ name: 'alice', b: browser() })
    expect(await a.serverName()).toBe(SERVER)
    await Promise.all(
      ['alice', 'bob', 'carol'].map(async (name) => {
        const b = browser()
        const progress: string[] = []
        const e = (await auth({ name, b }).register(name, PW, (p) => progress.push(p))) as ClosableEngine
        expect(progress).toContain('generating')
        users[name] = { name, address: `${name}@${SERVER}`, b, e }
      }),
    )
    for (const u of Object.values(users)) {
      expect(u.e.getState().me).toBe(u.address)
      await waitFor(u.e, (s) => s.connection === 'online', `${u.name} online`)
    }
  })

  it('refuses a wrong password with a human message', async () => {
    await expect(auth({ name: 'mallory', b: browser() }).login('alice', 'not the password')).rejects.toThrow(/Wrong username or password/)
  })

  it('delivers direct messages both ways in real time, with read marks', async () => {
    const { alice, bob } = users
    const conv = await alice.e.openDirect('bob')
    expect(conv).toBe(dm('bob'))
    const s0 = alice.e.getState()
    await alice.e.send(conv, `hello bob ${MARKER}`)
    expect(msgs(alice.e.getState(), conv).at(-1)?.status).toMatch(/queued|sending|sent/)
    expect(alice.e.getState()).not.toBe(s0) // a new snapshot on change
    await waitFor(alice.e, (s) => msgs(s, conv).some((m) => m.text.startsWith('hello bob') && m.status === 'delivered'), 'alice: delivered')
    const sb = await waitFor(bob.e, (s) => msgs(s, dm('alice')).some((m) => m.text === `hello bob ${MARKER}`), 'bob receives')
    const got = msgs(sb, dm('alice')).find((m) => m.text.startsWith('hello bob'))!
    expect(got.outgoing).toBe(false)
    expect(got.sender).toBe(alice.address)
    expect(sb.conversations.find((c) => c.id === dm('alice'))?.unread).toBe(1)
    expect(sb.contacts[alice.address]?.trust).toBe('unverified')
    expect(bob.e.getState()).toBe(bob.e.getState()) // same object while nothing changes

    await bob.e.send(dm('alice'), `hi alice ${MARKER}`)
    await waitFor(alice.e, (s) => msgs(s, conv).some((m) => m.text === `hi alice ${MARKER}` && !m.outgoing), 'alice receives the reply')

    await bob.e.markRead(dm('alice'))
    expect(bob.e.getState().conversations.find((c) => c.id === dm('alice'))?.unread).toBe(0)
    const sa = await waitFor(alice.e, (s) => msgs(s, conv).some((m) => m.text.startsWith('hello bob') && m.status === 'read'), 'alice sees read')
    expect(msgs(sa, conv).find((m) => m.text.startsWith('hello bob'))?.readBy).toEqual([bob.address])
  })

  it('sends an attachment that the recipient downloads, checks and decrypts with its type', async () => {
    const { alice, bob } = users
    const content = `attachment body ${MARKER} ` + 'x'.repeat(3000)
    await alice.e.send(dm('bob'), 'a file', { files: [new File([content], `notes-${MARKER}.txt`, { type: 'text/plain' })] })
    const sb = await waitFor(bob.e, (s) => msgs(s, dm('alice')).some((m) => m.text === 'a file'), 'bob gets the file message')
    const m = msgs(sb, dm('alice')).find((x) => x.text === 'a file')!
    expect(m.attachments).toHaveLength(1)
    expect(m.attachments[0]).toMatchObject({ name: `notes-${MARKER}.txt`, mime: 'text/plain', size: content.length })
    const blob = await bob.e.openAttachment(m.id, m.attachments[0].fileId)
    expect(blob.type).toBe('text/plain')
    expect(await blob.text()).toBe(content)
  })

  it('makes a disappearing message vanish on both sides and from storage', async () => {
    const { alice, bob } = users
    await alice.e.send(dm('bob'), `vanishing ${MARKER}`, { expiresInSeconds: 2 })
    const sb = await waitFor(bob.e, (s) => msgs(s, dm('alice')).some((m) => m.text.startsWith('vanishing')), 'bob gets it')
    const m = msgs(sb, dm('alice')).find((x) => x.text.startsWith('vanishing'))!
    expect(m.expiresAt).toBeGreaterThan(Date.now())
    expect(m.expiresAt! - m.sentAt).toBe(2000)
    await waitFor(bob.e, (s) => !msgs(s, dm('alice')).some((x) => x.id === m.id), 'gone at bob', 10_000)
    await waitFor(alice.e, (s) => !msgs(s, dm('bob')).some((x) => x.id === m.id), 'gone at alice', 10_000)
    const { text } = await dumpIndexedDB()
    expect(text).not.toContain(m.id) // the sealed records are deleted, not only hidden
  })

  it('runs a group of three with add and remove; a removed member cannot read new messages', async () => {
    const { alice, bob, carol } = users
    const g = await alice.e.createGroup(`Team ${MARKER}`, ['bob', 'carol'])
    expect(g).toMatch(/^g:[0-9a-f]{32}@engine\.test$/)
    for (const u of [bob, carol])
      await waitFor(u.e, (s) => s.conversations.some((c) => c.id === g && c.title === `Team ${MARKER}` && c.members.length === 3), `${u.name} sees the named group`)
    expect(alice.e.getState().conversations.find((c) => c.id === g)?.myRole).toBe('owner')

    await alice.e.send(g, `to the team ${MARKER}`)
    for (const u of [bob, carol]) await waitFor(u.e, (s) => msgs(s, g).some((m) => m.text === `to the team ${MARKER}`), `${u.name} gets the group message`)
    await carol.e.send(g, 'carol here')
    for (const u of [alice, bob]) await waitFor(u.e, (s) => msgs(s, g).some((m) => m.text === 'carol here' && m.sender === carol.address), `${u.name} gets carol's`)

    await alice.e.removeMember(g, 'carol')
    await waitFor(carol.e, (s) => s.conversations.find((c) => c.id === g)?.members.length === 0, 'carol is out')
    await waitFor(bob.e, (s) => s.conversations.find((c) => c.id === g)?.members.length === 2, 'bob sees two members')
    await alice.e.send(g, 'after carol left')
    await waitFor(bob.e, (s) => msgs(s, g).some((m) => m.text === 'after carol left'), 'bob gets the post-removal message')
    await expect(carol.e.send(g, 'still here?')).rejects.toThrow(/no longer a member/)
    await carol.e.loadHistory(g)
    expect(msgs(carol.e.getState(), g).some((m) => m.text === 'after carol left')).toBe(false)
    // The server does not hand carol the new epoch's key either.
    await expect(
      users.carol.b.fetch(`${base}/api/groups/${encodeURIComponent(g.slice(2))}/key`).then((r) => r.status),
    ).resolves.toBe(404)

    await alice.e.addMember(g, 'carol')
    await waitFor(carol.e, (s) => s.conversations.find((c) => c.id === g)?.members.length === 3, 'carol is back')
    await alice.e.send(g, 'welcome back')
    await waitFor(carol.e, (s) => msgs(s, g).some((m) => m.text === 'welcome back'), 'carol reads new messages again')
    expect(carol.e.getState().conversations.find((c) => c.id === g)?.title).toBe(`Team ${MARKER}`)
  })

  it('verifies contacts by QR code and by safety number', async () => {
    const { alice, bob, carol } = users
    const fromBob = await bob.e.safety(alice.address)
    await expect(alice.e.verifyScanned(fromBob.qrPayload.replace(/.$/, (c) => (c === '0' ? '1' : '0')))).rejects.toThrow(/does not match/)
    expect(await alice.e.verifyScanned(fromBob.qrPayload)).toBe(bob.address)
    await waitFor(alice.e, (s) => s.contacts[bob.address]?.trust === 'verified', 'bob verified')
    const ac = await alice.e.safety(carol.address)
    const ca = await carol.e.safety(alice.address)
    expect(ac.safetyNumber).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(ac.safetyNumber).toBe(ca.safetyNumber)
    // One server, no federation: nobody vouches for its directory, no
    // forks, and the answer checked out (no error).
    expect(ac.directory).toEqual({ vouchedBy: [], forks: [] })
    await alice.e.markVerified(carol.address)
    expect(alice.e.getState().contacts[carol.address].trust).toBe('verified')
  })

  it('keeps history across a reload, shows it with the server down, and delivers the outbox and read marks when it is back', async () => {
    const { alice, bob } = users
    await bob.e.send(dm('alice'), 'read me offline')
    await waitFor(alice.e, (x) => msgs(x, dm('bob')).some((m) => m.text === 'read me offline'), 'alice receives before going offline')
    alice.e.close()
    await stopServer()
    await waitFor(bob.e, (s) => s.connection === 'offline', 'bob notices the server is down')
    const e = (await auth(alice).restore())!
    expect(e).not.toBeNull()
    users.alice.e = e
    const s = await waitFor(e, (x) => x.connection === 'offline', 'alice restored offline')
    await e.loadHistory(dm('bob'))
    const texts = msgs(e.getState(), dm('bob')).map((m) => m.text)
    expect(texts).toEqual(expect.arrayContaining([`hello bob ${MARKER}`, `hi alice ${MARKER}`, 'a file']))
    expect(s.contacts[bob.address].trust).toBe('verified') // pins come from the cache too
    expect(s.conversations.some((c) => c.title === `Team ${MARKER}`)).toBe(true)

    expect(s.conversations.find((c) => c.id === dm('bob'))?.unread).toBeGreaterThan(0)
    await e.markRead(dm('bob')) // offline: read here at once, queued for the server
    expect(e.getState().conversations.find((c) => c.id === dm('bob'))?.unread).toBe(0)
    await e.send(dm('bob'), 'written offline 1')
    await e.send(dm('bob'), 'written offline 2')
    expect(msgs(e.getState(), dm('bob')).filter((m) => m.text.startsWith('written offline')).map((m) => m.status)).toEqual(['queued', 'queued'])

    await startServer(`127.0.0.1:${port}`)
    await waitFor(e, (x) => msgs(x, dm('bob')).filter((m) => m.text.startsWith('written offline') && m.status === 'delivered').length === 2, 'outbox delivered', 30_000)
    const sb = await waitFor(bob.e, (x) => msgs(x, dm('alice')).filter((m) => m.text.startsWith('written offline')).length === 2, 'bob gets the offline messages', 30_000)
    expect(msgs(sb, dm('alice')).filter((m) => m.text.startsWith('written offline')).map((m) => m.text)).toEqual(['written offline 1', 'written offline 2'])
    await waitFor(e, (x) => x.connection === 'online', 'alice online again')
    await waitFor(bob.e, (x) => msgs(x, dm('alice')).find((m) => m.text === 'read me offline')?.status === 'read', 'bob sees the read mark made offline', 30_000)
  })

  it('detects a key change and refuses to send to a verified contact until the change is accepted', async () => {
    const { alice } = users
    await changeKeysOnServer('bob')
    await waitFor(alice.e, (s) => s.contacts[users.bob.address]?.trust === 'changed', 'alice sees bob changed')
    expect(alice.e.getState().contacts[users.bob.address].wasVerified).toBe(true)
    await alice.e.send(dm('bob'), 'to the new key')
    const s = await waitFor(alice.e, (x) => msgs(x, dm('bob')).some((m) => m.text === 'to the new key' && m.status === 'failed'), 'send refused')
    expect(msgs(s, dm('bob')).find((m) => m.text === 'to the new key')?.error).toMatch(/safety number of bob@engine\.test, a verified contact, changed/)

    await alice.e.acceptKeyChange('bob')
    expect(alice.e.getState().contacts[users.bob.address]).toMatchObject({ trust: 'unverified', wasVerified: false })
    const failed = msgs(alice.e.getState(), dm('bob')).find((m) => m.text === 'to the new key')!
    await alice.e.retry(failed.id)
    await waitFor(alice.e, (x) => msgs(x, dm('bob')).find((m) => m.id === failed.id)?.status === 'delivered', 'delivered after accepting')

    // Bob's device holds the old keys: he logs in again, keeping his cache, and reads it.
    users.bob.e.close()
    const e = (await auth(users.bob).login('bob', PW)) as ClosableEngine
    users.bob.e = e
    await waitFor(e, (x) => msgs(x, dm('alice')).some((m) => m.text === 'to the new key'), 'bob reads with the new keys')
    expect(msgs(e.getState(), dm('alice')).some((m) => m.text === `hello bob ${MARKER}`)).toBe(true)
  })

  it('uploads a file again when the upload is gone by the time its message is sent again', async () => {
    const { alice } = users
    // Bob is verified again, then his keys change: the send fails at sealing, after the upload.
    await alice.e.markVerified('bob')
    await changeKeysOnServer('bob')
    await waitFor(alice.e, (s) => s.contacts[users.bob.address]?.trust === 'changed', 'alice sees bob changed again')
    const before = uploads.length
    const content = 'the agenda\n'.repeat(100)
    await alice.e.send(dm('bob'), 'with the agenda', { files: [new File([content], 'agenda.txt', { type: 'text/plain' })] })
    const s = await waitFor(alice.e, (x) => msgs(x, dm('bob')).some((m) => m.text === 'with the agenda' && m.status === 'failed'), 'send refused')
    expect(uploads.length).toBe(before + 1)
    const failed = msgs(s, dm('bob')).find((m) => m.text === 'with the agenda')!

    // The upload goes meanwhile (as the server does with a file no message lists after a while).
    const api = new ApiClient({ baseUrl: base, mode: 'body', locks: null })
    await apiLogin(api, 'alice', PW)
    await api.request('DELETE', `/api/files/${uploads[before]}`)

    await alice.e.acceptKeyChange('bob')
    await alice.e.retry(failed.id)
    await waitFor(alice.e, (x) => msgs(x, dm('bob')).find((m) => m.id === failed.id)?.status === 'delivered', 'delivered after uploading again')
    expect(uploads.length).toBe(before + 2)
    expect(msgs(alice.e.getState(), dm('bob')).find((m) => m.id === failed.id)?.attachments[0].fileId).toBe(uploads[before + 1])

    users.bob.e.close()
    const e = (await auth(users.bob).login('bob', PW)) as ClosableEngine
    users.bob.e = e
    const sb = await waitFor(e, (x) => msgs(x, dm('alice')).some((m) => m.text === 'with the agenda'), 'bob reads it with his new keys')
    const got = msgs(sb, dm('alice')).find((m) => m.text === 'with the agenda')!
    expect(await (await e.openAttachment(got.id, got.attachments[0].fileId)).text()).toBe(content)
  })

  it('stores and sends nothing readable: no plaintext in IndexedDB, in requests or on the server', async () => {
    const { names, text } = await dumpIndexedDB()
    expect(names).toEqual(expect.arrayContaining([`pl-alice:alice@${SERVER}`, `pl-bob:bob@${SERVER}`, `pl-carol:carol@${SERVER}`]))
    expect(text.length).toBeGreaterThan(10_000)
    expect(text).not.toContain(MARKER)
    expect(text).not.toContain('written offline')
    expect(text).not.toContain(PW)
    expect(sent.length).toBeGreaterThan(20)
    expect(sent.join('\n')).not.toContain(MARKER)
    expect(sent.join('\n')).not.toContain(PW)
    for (const f of filesUnder(dataDir)) expect(readFileSync(f).toString('latin1')).not.toContain(MARKER)
  })

  it('changes the password: the new one logs in, the old one does not', async () => {
    const { carol } = users
    await carol.e.changePassword(PW, PW + ' 2')
    await expect(auth({ name: 'carol2', b: browser() }).login('carol', PW)).rejects.toThrow(/Wrong username or password/)
    const e2 = (await auth({ name: 'carol2', b: browser() }).login('carol', PW + ' 2')) as ClosableEngine
    await waitFor(e2, (s) => s.contacts[users.alice.address] !== undefined, "carol's pins roam to a new device")
    e2.close()
  })

  it('shows sessionEnded when the session is revoked elsewhere, and resumes with the password keeping the state', async () => {
    const { bob } = users
    const other = { name: 'bob-laptop', b: browser() }
    const laptop = await auth(other).login('bob', PW)
    await waitFor(laptop, (s) => s.connection === 'online', 'the laptop online')
    const before = msgs(bob.e.getState(), dm('alice')).length
    await laptop.logoutEverywhere()
    expect((await indexedDB.databases()).map((d) => d.name)).not.toContain(`pl-bob-laptop:bob@${SERVER}`)
    await waitFor(bob.e, (s) => s.sessionEnded, 'bob sees his session ended')
    expect(msgs(bob.e.getState(), dm('alice')).length).toBe(before) // nothing dropped from the screen
    await expect(bob.e.resume('wrong password')).rejects.toThrow(/Wrong username or password/)
    await bob.e.resume(PW)
    await waitFor(bob.e, (s) => !s.sessionEnded && s.connection === 'online', 'bob resumed')
    await users.alice.e.send(dm('bob'), 'after the resume')
    await waitFor(bob.e, (s) => msgs(s, dm('alice')).some((m) => m.text === 'after the resume'), 'bob receives after resuming')
  })

  it('logs out and wipes the account from IndexedDB', async () => {
    const { carol } = users
    await carol.e.logout()
    const names = (await indexedDB.databases()).map((d) => d.name)
    expect(names).not.toContain(`pl-carol:carol@${SERVER}`)
    expect(await auth(carol).restore()).toBeNull()
    delete users.carol
  })

  it('deletes the account only with the right password, wiping the device and freeing the name', async () => {
    const { alice } = users
    await expect(alice.e.deleteAccount('not it')).rejects.toThrow(/password is wrong/)
    await alice.e.deleteAccount(PW)
    expect((await indexedDB.databases()).map((d) => d.name)).not.toContain(`pl-alice:alice@${SERVER}`)
    await expect(auth({ name: 'alice-again', b: browser() }).login('alice', PW)).rejects.toThrow(/Wrong username or password/)
    delete users.alice
  })
})
