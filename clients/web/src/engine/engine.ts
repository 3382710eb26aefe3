// The client engine: protocol (spec/e2ee.md) + storage (store.ts) + the
// homeserver's API (spec/openapi.yaml), behind the Engine interface of
// types.ts. The Go SDK (clients/go/client) is the reference for behaviour.
import { ApiError, type ApiClient } from '../api/client'
import { login as apiLogin } from '../api/account'
import { derivePasswordKeys } from '../crypto/kdf'
import { PrivateKeys, unwrapPrivateKeys, wrapPrivateKeys } from '../crypto/account'
import { type KeyBundle, parseKeyBundle } from '../crypto/bundle'
import { type Bytes, compareBytewise, constantTimeEqual, fromB64, toB64, toHex, utf8 } from '../crypto/bytes'
import { type Consistency, type ServerState, acceptLookup, checkHeadProgress, parseConsistency, parseLookup, parseTreeHead, verifyTreeHead } from '../crypto/directory'
import { E2EEError } from '../crypto/errors'
import { type Envelope, envelopeJSON, openDirect, parseEnvelope, sealDirect } from '../crypto/envelope'
import { type GroupKey, openGroup, openGroupKey, sealGroup, sealGroupKey } from '../crypto/group'
import { isGroupHeader } from '../crypto/header'
import { MIN_ITERATIONS } from '../crypto/labels'
import type { AttachmentRef, Message } from '../crypto/message'
import { openAttachment as openBlob, sealAttachment } from '../crypto/attachment'
import { type Pin, type Pins, encodePins, mergePins, openPins, sealPins } from '../crypto/pinned'
import { random, sha256 } from '../crypto/primitives'
import { digits, displaySafetyNumber, partyHash, qrPayload, safetyNumber, verifyQrPayload } from '../crypto/safety'
import { covers, parseCosignatures, parseForks, verifyCosignature, verifyFork } from '../crypto/witness'
import { type EarlierServerKey, acceptServerKey, earlierKeysFromDocument, withEarlier } from '../crypto/keychange'
import { EngineError, asHuman, human, remoteFileGone, remoteFileUnreachable, retryable } from './errors'
import { heldAtOrAbove, lostEpochStep, sameDocument } from './lostepochs'
import { metaEpoch, openMeta, sealMeta } from './meta'
import { PushControl, type PushEnv, type Registered, browserPushEnv } from './push'
import { AccountStore, type DeviceStore } from './store'
import type {
  Attachment, ChatMessage, Contact, Conversation, DirectoryWitnessing, Engine, EngineState, GroupMember, Role, SafetyInfo, SendOptions,
} from './types'

// ---- records kept in the sealed stores ----

interface RefJSON {
  fileId: string
  key: string
  mime: string
  name: string
  sha256: string
  size: number
}

/** The server part of an address or group id (after the last '@'). */
const serverOf = (a: string) => a.slice(a.lastIndexOf('@') + 1)

interface MessageRecord extends ChatMessage {
  refs?: RefJSON[]
  /** incoming, not yet marked read */
  unread?: boolean
  /** read here, the server not told yet (offline): sent by the drainer */
  readPending?: boolean
  /** who must read it for 'read' (outgoing) */
  recipients?: string[]
  /** other homeservers that accepted it for their users (outgoing) */
  deliveredTo?: string[]
  /** our server took it, another refused it or could not be reached (delivery_failed) */
  deliveryFailed?: boolean
  /**
   * sent again as this new message (retry after delivery_failed): not
   * shown, and forgotten once the server deleted it
   */
  replacedBy?: string
  /** an envelope that could not be opened yet (sender's key changed), to retry */
  envelope?: unknown
  seq?: number
}

interface ConversationRecord {
  id: string
  kind: 'direct' | 'group'
  peer?: string
  group?: string
  name?: string
  members: GroupMember[]
  epoch?: number
  retentionSeconds: number | null
  updatedAt: number
  /** the account is no longer a member of the group */
  left?: boolean
}

interface OutboxRecord {
  id: string
  conversationId: string
  text: string
  files: { name: string; mime: string; data: string }[]
  refs?: RefJSON[]
  expiresInSeconds?: number
  /** the sealed envelope once made: a retry posts the same bytes under the same id */
  envelope?: string
  epoch?: number
  queuedAt: number
  /**
   * the message this one sends again after another server refused it or
   * never took it (delivery_failed; its id is spent): deleted for everyone
   * once this one is acknowledged, not before, since its files stay on the
   * server only while a message lists them and this one lists the same
   */
  replaces?: string
}

interface GroupKeyJSON {
  from: string
  members: string[]
  createdAt: number
  key: string
}

interface PinJSON {
  identityKey: string
  firstSeen: number
  verified: boolean
  verifiedAt?: number
}

interface GroupInfo {
  id: string
  epoch: number
  members: GroupMember[]
  meta?: string
  retention_seconds: number
  created_at: string
}

interface MailItem {
  seq: number
  envelope: unknown
  direction: 'in' | 'out'
  read?: boolean
  read_by?: string[]
}

interface Frame {
  type: string
  seq?: number
  id?: string
  by?: string
  address?: string
  group?: string
  message?: MailItem
  server?: string
  error?: string | { code: string; message: string }
  detail?: string
}

export interface EngineDeps {
  api: ApiClient
  store: AccountStore
  device: DeviceStore
  server: string
  WebSocket?: typeof WebSocket
  baseUrl: string
  now?: () => number
  minBackoffMs?: number
  maxBackoffMs?: number
  /** called after logout, deleteAccount: the app goes back to sign-in */
  onGone?: () => void
  /** the browser's Web Push (browserPushEnv() when undefined; null: none) */
  push?: PushEnv | null
}

const refToJSON = (a: AttachmentRef): RefJSON => ({ fileId: a.fileId, key: toB64(a.key), mime: a.mime, name: a.name, sha256: toB64(a.sha256), size: a.size })
const refFromJSON = (a: RefJSON): AttachmentRef => ({ fileId: a.fileId, key: fromB64(a.key)!, mime: a.mime, name: a.name, sha256: fromB64(a.sha256)!, size: a.size })
const attachmentOf = (a: RefJSON): Attachment => ({ fileId: a.fileId, name: a.name, mime: a.mime, size: a.size })

function pinsToJSON(p: Pins): Record<string, PinJSON> {
  const out: Record<string, PinJSON> = {}
  for (const [a, v] of p) out[a] = { identityKey: toB64(v.identityKey), firstSeen: v.firstSeen, verified: v.verified, ...(v.verifiedAt !== undefined ? { verifiedAt: v.verifiedAt } : {}) }
  return out
}

function pinsFromJSON(j: Record<string, PinJSON> | undefined): Pins {
  const out: Pins = new Map()
  for (const [a, v] of Object.entries(j ?? {})) {
    const pin: Pin = { identityKey: fromB64(v.identityKey)!, firstSeen: v.firstSeen, verified: v.verified }
    if (v.verifiedAt !== undefined) pin.verifiedAt = v.verifiedAt
    out.set(a, pin)
  }
  return out
}

/** How long newestUnread() waits for the connection before answering from the cache. */
const UNREAD_WAIT_MS = 10_000

const isAdmin = (r: Role | undefined) => r === 'owner' || r === 'admin'
const samePins = (a: Pins, b: Pins) => compareBytewise(toB64(encodePins(a)), toB64(encodePins(b))) === 0

export class EngineImpl implements Engine {
  readonly me: string
  readonly #api: ApiClient
  #store: AccountStore
  readonly #device: DeviceStore
  readonly #server: string
  readonly #WS?: typeof WebSocket
  readonly #wsBase: string
  readonly #now: () => number
  readonly #minBackoff: number
  readonly #maxBackoff: number
  readonly #onGone?: () => void

  #keys: PrivateKeys
  #bundle!: KeyBundle
  #kek: CryptoKey

  // state
  #listeners = new Set<() => void>()
  #snapshot?: EngineState
  #connection: EngineState['connection'] = 'connecting'
  #sessionEnded = false
  #defaultRetention: number | null = null
  #conversations = new Map<string, ConversationRecord>()
  #messages = new Map<string, MessageRecord>()
  #loaded = new Set<string>()
  #pins: Pins = new Map()
  #pinsVersion = 0
  #observed = new Map<string, Bytes>() // identity keys the directory served last
  #dir: ServerState = {}
  #dirs = new Map<string, ServerState>() // other servers' directories
  #lastSeq = 0
  #groupKeys = new Map<string, Map<number, GroupKey>>()
  #groupLocks = new Map<string, Promise<void>>()
  #bundles = new Map<string, KeyBundle>()
  #hashes = new Map<string, Bytes>()
  #timers = new Map<string, ReturnType<typeof setTimeout>>()

  // connection
  #closed = false
  /** a logout or deletion is under way: the server closing the socket (4001/4003) is expected, not a reason to refresh */
  #leaving = false
  #ws?: WebSocket
  #wake?: () => void
  #draining?: Promise<void>
  #drainTimer?: ReturnType<typeof setTimeout>
  #drainBackoff = 0
  #events: Promise<void> = Promise.resolve()
  #pinLock: Promise<unknown> = Promise.resolve()
  #offHandlers: (() => void)[] = []
  readonly #push: PushControl

  constructor(d: EngineDeps, keys: PrivateKeys, kek: CryptoKey) {
    this.#api = d.api
    this.#store = d.store
    this.#device = d.device
    this.#server = d.server
    this.#WS = d.WebSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket
    const base = d.baseUrl || (globalThis as { location?: { origin: string } }).location?.origin || ''
    this.#wsBase = base.replace(/^http/, 'ws')
    this.#now = d.now ?? Date.now
    this.#minBackoff = d.minBackoffMs ?? 500
    this.#maxBackoff = d.maxBackoffMs ?? 15_000
    this.#onGone = d.onGone
    this.me = d.store.account.address
    this.#keys = keys
    this.#kek = kek
    this.#push = new PushControl({
      api: d.api,
      env: d.push === undefined ? browserPushEnv() : d.push,
      load: () => this.#store.get<Registered>('kv', 'push'),
      save: async (r) => (r ? this.#store.put('kv', 'push', r) : this.#store.delete('kv', 'push')),
      changed: () => this.#emit(),
    })
  }

  /** Builds the engine from the stored account: the cache is loaded, the connection starts. */
  static async start(d: EngineDeps, opts: { sessionEnded?: boolean } = {}): Promise<EngineImpl> {
    const a = d.store.account
    const keys = new PrivateKeys(a.address, { key: a.identity, publicKey: new Uint8Array(a.identityPublic) }, { key: a.encryption, spki: new Uint8Array(a.spki), keyId: a.keyId })
    const e = new EngineImpl(d, keys, a.kek)
    e.#bundle = await parseKeyBundle(utf8(a.bundle))
    e.#sessionEnded = opts.sessionEnded ?? false
    await e.#loadCache()
    // What the browser says of notifications; a failure leaves them shown as off.
    await e.#push.init().catch(() => undefined)
    e.#listenBrowser()
    void e.#run()
    return e
  }

  // ---------------------------------------------------------------- state

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  getState(): EngineState {
    this.#snapshot ??= this.#build()
    return this.#snapshot
  }

  #emit(): void {
    this.#snapshot = undefined
    for (const l of [...this.#listeners]) l()
  }

  #build(): EngineState {
    const messages: Record<string, ChatMessage[]> = {}
    const byConv = new Map<string, MessageRecord[]>()
    for (const m of this.#messages.values()) {
      if (m.replacedBy !== undefined) continue
      const l = byConv.get(m.conversationId) ?? []
      l.push(m)
      byConv.set(m.conversationId, l)
    }
    const conversations: Conversation[] = []
    for (const c of this.#conversations.values()) {
      const list = (byConv.get(c.id) ?? []).sort((a, b) => a.sentAt - b.sentAt || (a.id < b.id ? -1 : 1))
      const shown = list.map((m) => this.#public(m))
      if (this.#loaded.has(c.id) || shown.length > 0) messages[c.id] = shown
      const me = c.members.find((m) => m.address === this.me)
      const others = c.members.filter((m) => m.address !== this.me).map((m) => m.address)
      conversations.push(
        Object.freeze({
          id: c.id,
          kind: c.kind,
          title: c.kind === 'direct' ? c.peer! : c.name || others.join(', ') || 'Group',
          ...(c.peer ? { peer: c.peer } : {}),
          members: c.kind === 'group' ? c.members.map((m) => Object.freeze({ ...m })) : [],
          ...(c.kind === 'group' && me ? { myRole: me.role } : {}),
          ...(shown.length > 0 ? { lastMessage: shown[shown.length - 1] } : {}),
          unread: list.filter((m) => m.unread).length,
          retentionSeconds: c.retentionSeconds,
          updatedAt: Math.max(c.updatedAt, list.length ? list[list.length - 1].sentAt : 0),
        }) as Conversation,
      )
    }
    conversations.sort((a, b) => b.updatedAt - a.updatedAt)
    const contacts: Record<string, Contact> = {}
    for (const a of this.#pins.keys()) contacts[a] = Object.freeze(this.#contact(a))
    return Object.freeze({
      me: this.me,
      connection: this.#connection,
      conversations: Object.freeze(conversations) as Conversation[],
      messages: Object.freeze(messages),
      contacts: Object.freeze(contacts),
      defaultRetentionSeconds: this.#defaultRetention,
      sessionEnded: this.#sessionEnded,
      push: this.#push.state,
      ...(this.#push.error !== undefined ? { pushError: this.#push.error } : {}),
    })
  }

  #public(m: MessageRecord): ChatMessage {
    const c: ChatMessage = {
      id: m.id, conversationId: m.conversationId, sender: m.sender, outgoing: m.outgoing, sentAt: m.sentAt, text: m.text,
      attachments: (m.refs ?? []).map(attachmentOf), status: m.status, readBy: [...m.readBy],
      ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}),
      ...(m.error !== undefined ? { error: m.error } : {}),
      ...(m.status === 'waiting' && m.waitingFor?.length ? { waitingFor: [...m.waitingFor] } : {}),
    }
    return Object.freeze(c)
  }

  #contact(a: string): Contact {
    const pin = this.#pins.get(a)!
    const seen = this.#observed.get(a)
    if (seen && !constantTimeEqual(seen, pin.identityKey)) return { address: a, trust: 'changed', wasVerified: pin.verified }
    return { address: a, trust: pin.verified ? 'verified' : 'unverified', wasVerified: false }
  }

  #setConnection(c: EngineState['connection']): void {
    if (this.#connection !== c) {
      this.#connection = c
      this.#emit()
    }
  }

  // ---------------------------------------------------------------- cache

  async #loadCache(): Promise<void> {
    const now = this.#now()
    await this.#store.pruneExpired('messages', now)
    const kv = async <T>(k: string) => this.#store.get<T>('kv', k)
    this.#lastSeq = (await kv<number>('seq')) ?? 0
    this.#defaultRetention = (await kv<number | null>('defaultRetention')) ?? null
    const pins = await kv<{ version: number; pins: Record<string, PinJSON> }>('pins')
    this.#pins = pinsFromJSON(pins?.pins)
    this.#pinsVersion = pins?.version ?? 0
    for (const [a, k] of Object.entries((await kv<Record<string, string>>('observed')) ?? {})) this.#observed.set(a, fromB64(k)!)
    const dir = await kv<{ serverKey?: string; head?: unknown; earlier?: string[] }>('directory')
    if (dir?.serverKey) this.#dir.serverKey = fromB64(dir.serverKey)!
    if (dir?.head) this.#dir.lastHead = parseTreeHead(dir.head as never)
    if (dir?.earlier) this.#dir.earlier = earlierKeys(dir.earlier)
    if (!dir) {
      // A new account on this device: start from the device's pin of the server.
      const sp = await this.#device.server(this.#server)
      if (sp) {
        this.#dir.serverKey = fromB64(sp.serverKey)!
        if (sp.head) this.#dir.lastHead = parseTreeHead(sp.head as never)
        if (sp.earlier) this.#dir.earlier = earlierKeys(sp.earlier)
      }
    }
    for (const { value } of await this.#store.all<ConversationRecord>('conversations')) this.#conversations.set(value.id, value)
    for (const { key, value } of await this.#store.all<Record<number, GroupKeyJSON>>('kv')) {
      if (!key.startsWith('gk:')) continue
      const gid = key.slice(3)
      const m = new Map<number, GroupKey>()
      for (const [ep, g] of Object.entries(value)) m.set(Number(ep), { group: gid, epoch: Number(ep), from: g.from, members: g.members, createdAt: g.createdAt, key: fromB64(g.key)! })
      this.#groupKeys.set(gid, m)
    }
    for (const { value } of await this.#store.all<MessageRecord>('messages')) {
      if (value.expiresAt !== undefined && value.expiresAt <= now) continue
      if (value.status === 'sending') value.status = 'queued'
      this.#messages.set(value.id, value)
      this.#armExpiry(value)
    }
    this.#emit()
  }

  async #saveMessage(m: MessageRecord): Promise<void> {
    this.#messages.set(m.id, m)
    await this.#store.put('messages', m.id, m, m.expiresAt)
    this.#armExpiry(m)
  }

  async #saveConversation(c: ConversationRecord): Promise<void> {
    this.#conversations.set(c.id, c)
    await this.#store.put('conversations', await AccountStore.hashedKey(c.id), c)
  }

  async #savePins(): Promise<void> {
    await this.#store.put('kv', 'pins', { version: this.#pinsVersion, pins: pinsToJSON(this.#pins) })
  }

  async #saveObserved(): Promise<void> {
    const o: Record<string, string> = {}
    for (const [a, k] of this.#observed) o[a] = toB64(k)
    await this.#store.put('kv', 'observed', o)
  }

  async #saveGroupKeys(gid: string): Promise<void> {
    const o: Record<number, GroupKeyJSON> = {}
    for (const [ep, g] of this.#groupKeys.get(gid) ?? []) o[ep] = { from: g.from, members: g.members, createdAt: g.createdAt, key: toB64(g.key) }
    await this.#store.put('kv', 'gk:' + gid, o)
  }

  #armExpiry(m: MessageRecord): void {
    if (m.expiresAt === undefined || this.#timers.has(m.id)) return
    const wait = Math.max(0, m.expiresAt - this.#now())
    if (wait > 2 ** 31 - 1) return // re-armed on a later start
    this.#timers.set(m.id, setTimeout(() => void this.#forget(m.id), wait))
  }

  /** Drops a message from the state and the cache (deleted, expired). */
  async #forget(id: string): Promise<void> {
    const t = this.#timers.get(id)
    if (t) clearTimeout(t)
    this.#timers.delete(id)
    if (this.#closed) return
    const had = this.#messages.delete(id)
    await this.#store.delete('messages', id)
    await this.#store.delete('outbox', id)
    if (had) this.#emit()
  }

  // ---------------------------------------------------------------- connection

  #listenBrowser(): void {
    const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void }
    if (typeof g.addEventListener !== 'function') return
    const on = () => this.#wake?.()
    const off = () => {
      this.#setConnection('offline')
      this.#ws?.close()
    }
    g.addEventListener('online', on)
    g.addEventListener('offline', off)
    this.#offHandlers.push(() => {
      g.removeEventListener?.('online', on)
      g.removeEventListener?.('offline', off)
    })
  }

  #browserOffline(): boolean {
    const n = (globalThis as { navigator?: { onLine?: boolean } }).navigator
    return n?.onLine === false
  }

  /** Waits ms, or less when woken (browser online, resume). */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms)
      function done() {
        clearTimeout(t)
        resolve()
      }
      this.#wake = done
    })
  }

  /** The connection loop: sync, socket, reconnect with backoff. */
  async #run(): Promise<void> {
    let backoff = this.#minBackoff
    while (!this.#closed) {
      if (this.#sessionEnded || this.#browserOffline()) {
        this.#setConnection('offline')
        await this.#pause(this.#sessionEnded ? 3_600_000 : this.#maxBackoff)
        continue
      }
      this.#setConnection('connecting')
      let reachedReady = false
      try {
        await this.#sync()
        reachedReady = await this.#socket()
      } catch (e) {
        if (e instanceof ApiError && e.code === 'session_ended') this.#endSession()
      }
      if (this.#closed) return
      if (this.#connection !== 'offline') this.#setConnection('offline')
      if (reachedReady) backoff = this.#minBackoff
      await this.#pause(backoff / 2 + Math.random() * (backoff / 2))
      backoff = Math.min(backoff * 2, this.#maxBackoff)
    }
  }

  #endSession(): void {
    if (!this.#sessionEnded) {
      this.#sessionEnded = true
      this.#emit()
    }
  }

  /** Called by the API client when a refresh fails for good. */
  sessionEndedByServer(): void {
    this.#endSession()
    this.#ws?.close()
  }

  /** Account settings, pins, groups: what the socket does not replay. */
  async #sync(): Promise<void> {
    const acc = await this.#api.get<{ default_retention_seconds: number }>('/api/account')
    const dr = acc.default_retention_seconds > 0 ? acc.default_retention_seconds : null
    if (dr !== this.#defaultRetention) {
      this.#defaultRetention = dr
      await this.#store.put('kv', 'defaultRetention', dr)
      this.#emit()
    }
    await this.#syncPins()
    const gl = await this.#api.get<{ groups: GroupInfo[] }>('/api/groups')
    const ids = new Set(gl.groups.map((g) => 'g:' + g.id))
    for (const g of gl.groups) await this.#adoptGroup(await this.#passLostEpochsQuiet(g))
    for (const c of this.#conversations.values())
      if (c.kind === 'group' && !ids.has(c.id) && !c.left) await this.#saveConversation({ ...c, left: true, members: [] })
    for (const c of this.#conversations.values()) if (c.kind === 'direct') void this.#refreshRetention(c)
    await this.#reopen()
  }

  async #refreshRetention(c: ConversationRecord): Promise<void> {
    try {
      const r = await this.#api.get<{ effective_seconds: number }>(`/api/conversations/${encodeURIComponent(c.peer!)}/retention`)
      const s = r.effective_seconds > 0 ? r.effective_seconds : null
      const cur = this.#conversations.get(c.id)
      if (cur && cur.retentionSeconds !== s) {
        await this.#saveConversation({ ...cur, retentionSeconds: s })
        this.#emit()
      }
    } catch {
      // shown as it was; the next connection tries again
    }
  }

  /** One socket, until it closes; true when it got as far as ready. */
  async #socket(): Promise<boolean> {
    const WS = this.#WS
    if (!WS) throw new EngineError('This browser cannot open a WebSocket.')
    const t = await this.#api.post<{ ticket: string }>('/api/ws/ticket')
    const url = `${this.#wsBase}/api/ws?ticket=${encodeURIComponent(t.ticket)}&after=${this.#lastSeq}`
    return new Promise<boolean>((resolve) => {
      let ready = false
      let ws: WebSocket
      try {
        ws = new WS(url)
      } catch {
        resolve(false)
        return
      }
      this.#ws = ws
      ws.onmessage = (ev: MessageEvent) => {
        let f: Frame
        try {
          f = JSON.parse(String(ev.data)) as Frame
        } catch {
          return
        }
        if (f.type === 'ready' || f.type === 'reset') ready = true
        this.#events = this.#events.then(() => this.#frame(f)).catch(() => {
          // A frame that could not be handled (a lookup failed): reconnect and resume from the last seq.
          ws.close()
        })
      }
      ws.onclose = (ev: CloseEvent) => {
        if (this.#ws === ws) this.#ws = undefined
        void this.#events.then(async () => {
          if ((ev.code === 4001 || ev.code === 4003) && !this.#leaving && !this.#closed) {
            try {
              await this.#api.refreshAfter()
            } catch (e) {
              if (e instanceof ApiError && e.code === 'session_ended') this.#endSession()
            }
          }
          resolve(ready)
        })
      }
      ws.onerror = () => {
        // onclose follows
      }
    })
  }

  async #setSeq(seq: number | undefined): Promise<void> {
    if (seq === undefined || seq <= this.#lastSeq) return
    this.#lastSeq = seq
    await this.#store.put('kv', 'seq', seq)
  }

  async #frame(f: Frame): Promise<void> {
    if (this.#closed) return
    switch (f.type) {
      case 'ready':
        await this.#setSeq(f.seq)
        this.#drainBackoff = 0
        this.#setConnection('online')
        this.#kick()
        this.#refreshPush()
        return
      case 'reset':
        await this.#catchUp(f.seq ?? 0)
        this.#setConnection('online')
        this.#kick()
        this.#refreshPush()
        return
      case 'ack':
      case 'error':
        return
    }
    if (f.seq !== undefined && f.seq <= this.#lastSeq) return
    switch (f.type) {
      case 'message':
      case 'group_message':
        if (f.message) await this.#ingest(f.message)
        break
      case 'read':
        await this.#onRead(f.id!, f.by!)
        break
      case 'deleted':
      case 'expired':
        await this.#forget(f.id!)
        break
      case 'key_changed':
        if (f.address) await this.#recheck(f.address)
        break
      case 'delivered':
      case 'delivery_failed':
      case 'delivery_waiting':
        if (f.id && f.server) await this.#onDelivery(f)
        break
      case 'group_changed':
        if (f.group) await this.#groupChanged(f.group)
        break
    }
    await this.#setSeq(f.seq)
  }

  /** After a reset: the mailbox after the last seq, up to upTo. */
  async #catchUp(upTo: number): Promise<void> {
    while (this.#lastSeq < upTo) {
      const page = await this.#api.get<{ messages: MailItem[] }>(`/api/messages?after=${this.#lastSeq}&limit=100`)
      if (page.messages.length === 0) break
      for (const it of page.messages) {
        if (it.seq > upTo) break
        await this.#ingest(it)
        await this.#setSeq(it.seq)
      }
      if (page.messages[page.messages.length - 1].seq >= upTo) break
    }
    await this.#setSeq(upTo)
  }

  // ---------------------------------------------------------------- directory and pins

  async #lookup(address: string, fresh = false): Promise<KeyBundle> {
    if (address === this.me) return this.#bundle
    if (!fresh) {
      const b = this.#bundles.get(address)
      if (b) return b
    }
    const server = address.slice(address.lastIndexOf('@') + 1)
    const own = server === this.#server
    // The other servers' directories are verified like our own, each against
    // its own pinned key and last head (spec/e2ee.md §6.4).
    const state: ServerState = own ? { ...this.#dir } : { ...(await this.#remoteDir(server)) }
    const since = state.lastHead?.treeSize ?? 0
    const data = await this.#api.get<unknown>(`/api/public_key/${encodeURIComponent(address)}${since > 0 ? `?since=${since}` : ''}`, {
      messages: {
        not_found: `There is no user ${address}.`,
        unknown_server: `There is no server ${server}. Check the address.`,
        unavailable: `${server} cannot be reached right now. Check the address, or try again later.`,
      },
    })
    const l = await parseLookup(JSON.stringify(data), since)
    const b = await acceptLookup(l, server, address, state, (from, to) => {
      if (!own) throw new EngineError(`${server}'s directory did not prove that its log extends the one seen before.`)
      return this.#consistency(from, to)
    })
    const saved = dirJSON(state)
    if (own) {
      this.#dir = state
      await this.#store.put('kv', 'directory', saved)
      await this.#device.setServer(this.#server, saved)
    } else {
      this.#dirs.set(server, state)
      await this.#store.put('kv', `directory:${server}`, saved)
    }
    this.#bundles.set(address, b)
    const seen = this.#observed.get(address)
    if (!seen || !constantTimeEqual(seen, b.identityKey)) {
      this.#observed.set(address, b.identityKey)
      await this.#saveObserved()
      this.#emit()
    }
    return b
  }

  /**
   * Pins `key` for the homeserver's own directory, keeping the last head
   * (which the new key's heads extend): after a head or answer verified
   * under `key` through a chain of key-change statements from the old pin,
   * which went through the keys `path` (acceptServerKey).
   */
  async #repinOwnDirectory(key: Uint8Array, path: Uint8Array[]): Promise<ServerState> {
    const state: ServerState = { ...this.#dir, serverKey: key, earlier: withEarlier(this.#dir.earlier, path) }
    const saved = dirJSON(state)
    this.#dir = state
    await this.#store.put('kv', 'directory', saved)
    await this.#device.setServer(this.#server, saved)
    return state
  }

  /** What this account verified of another server's directory. */
  async #remoteDir(server: string): Promise<ServerState> {
    let state = this.#dirs.get(server)
    if (!state) {
      const saved = await this.#store.get<{ serverKey: string; head?: unknown; earlier?: string[] }>('kv', `directory:${server}`)
      state = saved
        ? { serverKey: fromB64(saved.serverKey)!, lastHead: saved.head ? parseTreeHead(saved.head as never) : undefined, earlier: saved.earlier ? earlierKeys(saved.earlier) : undefined }
        : {}
      this.#dirs.set(server, state)
    }
    return state
  }

  async #consistency(from: number, to: number): Promise<Consistency> {
    return parseConsistency(JSON.stringify(await this.#api.get<unknown>(`/api/keys/consistency?from=${from}&to=${to}`, { auth: false })))
  }

  /**
   * The bundle of a contact, checked against the pins: pinned on first
   * use; a verified contact whose key changed is refused when `forSend`.
   */
  async #checked(address: string, forSend: boolean): Promise<{ bundle: KeyBundle; matches: boolean }> {
    const b = await this.#lookup(address)
    if (address === this.me) return { bundle: b, matches: true }
    const pin = this.#pins.get(address)
    if (!pin) {
      await this.#changePins((p) => {
        if (!p.has(address)) p.set(address, { identityKey: b.identityKey, firstSeen: this.#now(), verified: false })
      })
      return { bundle: b, matches: constantTimeEqual(this.#pins.get(address)!.identityKey, b.identityKey) }
    }
    const matches = constantTimeEqual(pin.identityKey, b.identityKey)
    if (!matches && pin.verified && forSend)
      throw new EngineError(`The safety number of ${address}, a verified contact, changed. Accept the new key and verify it again before sending.`, 'key_changed')
    return { bundle: b, matches }
  }

  /** Applies a change to the pins here and now, then syncs them with the server. */
  async #changePins(f: (p: Pins) => void): Promise<void> {
    const next: Pins = new Map(this.#pins)
    f(next)
    if (samePins(next, this.#pins)) return
    this.#pins = next
    await this.#savePins()
    this.#emit()
    void this.#syncPins().catch(() => undefined) // offline: synced on the next connection
  }

  /** GET the blob, merge (§18.3), PUT with If-Match; a 412 reads again. */
  #syncPins(): Promise<void> {
    const run = this.#pinLock.then(async () => {
      for (let i = 0; i < 8; i++) {
        const r = await this.#api.request<{ version: number; blob: string }>('GET', '/api/pinned_keys')
        const theirs = await openPins(this.#kek, this.me, fromB64(r.data.blob) ?? new Uint8Array())
        const merged = mergePins(theirs, this.#pins)
        if (!samePins(merged, this.#pins)) {
          this.#pins = merged
          this.#emit()
        }
        if (r.data.version > 0 && samePins(merged, theirs)) {
          this.#pinsVersion = r.data.version
          await this.#savePins()
          return
        }
        if (merged.size === 0) return
        try {
          const w = await this.#api.request<{ version: number }>('PUT', '/api/pinned_keys', {
            body: { blob: toB64(await sealPins(this.#kek, this.me, merged)) },
            headers: { 'If-Match': `"${r.data.version}"` },
          })
          this.#pinsVersion = w.data.version
          await this.#savePins()
          return
        } catch (e) {
          if (e instanceof ApiError && e.status === 412) continue
          throw e
        }
      }
      throw new EngineError('Your contacts list kept changing on another device. Try again.')
    })
    this.#pinLock = run.catch(() => undefined)
    return run
  }

  /** A contact's keys changed (key_changed event): look again, warn if it differs from the pin. */
  async #recheck(address: string): Promise<void> {
    this.#bundles.delete(address)
    try {
      await this.#lookup(address, true)
    } catch {
      // the contact may be gone; nothing to show
    }
  }

  async #partyHash(address: string, key: Uint8Array): Promise<Bytes> {
    const k = address + '\u0000' + toB64(key)
    let h = this.#hashes.get(k)
    if (!h) {
      h = await partyHash(key, address)
      this.#hashes.set(k, h)
    }
    return h
  }

  // ---------------------------------------------------------------- opening

  async #ingest(it: MailItem): Promise<void> {
    let env: Envelope
    try {
      env = parseEnvelope(JSON.stringify(it.envelope))
    } catch {
      return // not an envelope this client can even route; nothing to show
    }
    const h = env.header
    const outgoing = it.direction === 'out'
    if ((h.from === this.me) !== outgoing) return
    const existing = this.#messages.get(h.id)
    if (existing) {
      await this.#updateReadState(existing, it)
      return
    }
    if (h.expiresAt !== undefined && h.expiresAt <= this.#now()) return
    let convId: string
    if (isGroupHeader(env.header)) {
      convId = 'g:' + h.group!
      if (!this.#conversations.has(convId)) await this.#groupChanged(h.group!)
    } else {
      const peer = outgoing ? h.to![0] : h.from
      convId = 'd:' + peer
      await this.#ensureDirect(peer)
    }
    const rec: MessageRecord = {
      id: h.id, conversationId: convId, sender: h.from, outgoing, sentAt: h.sentAt, text: '', attachments: [],
      status: 'sent', readBy: [...(it.read_by ?? [])], seq: it.seq,
      ...(h.expiresAt !== undefined ? { expiresAt: h.expiresAt } : {}),
    }
    if (!outgoing && !it.read) rec.unread = true
    if (!(await this.#open(rec, env))) return // expired meanwhile
    rec.recipients = this.#recipientsOf(convId, env)
    this.#statusFromReads(rec)
    await this.#saveMessage(rec)
    const c = this.#conversations.get(convId)
    if (c && c.updatedAt < rec.sentAt) await this.#saveConversation({ ...c, updatedAt: rec.sentAt })
    this.#emit()
  }

  /** Tries again to open the messages that could not be opened (new keys, accepted key change, a lookup that failed). */
  async #reopen(only?: (m: MessageRecord) => boolean): Promise<void> {
    for (const m of [...this.#messages.values()]) {
      if (m.envelope === undefined || (only && !only(m))) continue
      const rec = { ...m }
      if (!(await this.#open(rec, parseEnvelope(JSON.stringify(m.envelope))))) {
        await this.#forget(m.id)
        continue
      }
      if (rec.envelope === undefined) {
        await this.#saveMessage(rec)
        this.#emit()
      }
    }
  }

  #recipientsOf(convId: string, env: Envelope): string[] {
    if (env.header.to) return env.header.to.filter((a) => a !== this.me)
    return (this.#conversations.get(convId)?.members ?? []).map((m) => m.address).filter((a) => a !== env.header.from)
  }

  #statusFromReads(m: MessageRecord): void {
    if (!m.outgoing || m.status === 'failed' || m.status === 'queued' || m.status === 'sending') return
    const need = m.recipients ?? []
    if (need.length > 0 && need.every((a) => m.readBy.includes(a))) m.status = 'read'
    else if (need.length > 0 && need.every((a) => serverOf(a) === serverOf(this.me) || m.deliveredTo?.includes(serverOf(a)))) m.status = 'delivered'
    else m.status = m.waitingFor?.length ? 'waiting' : 'sent'
  }

  /** Another homeserver accepted or refused one of our messages for its users, or could not be reached yet. */
  async #onDelivery(f: Frame): Promise<void> {
    const m = this.#messages.get(f.id!)
    if (!m || !m.outgoing) return
    const next: MessageRecord = { ...m }
    const waiting = (m.waitingFor ?? []).filter((s) => s !== f.server)
    if (waiting.length > 0) next.waitingFor = waiting
    else delete next.waitingFor
    if (f.type === 'delivery_waiting') {
      if (m.status === 'failed' || m.deliveredTo?.includes(f.server!)) return
      next.waitingFor = [...waiting, f.server!]
      this.#statusFromReads(next)
    } else if (f.type === 'delivered') {
      next.deliveredTo = [...new Set([...(m.deliveredTo ?? []), f.server!])]
      this.#statusFromReads(next)
    } else {
      delete next.waitingFor
      next.status = 'failed'
      next.deliveryFailed = true
      next.error = deliveryFailure(f.server!, typeof f.error === 'string' ? f.error : '', f.detail)
    }
    await this.#saveMessage(next)
    this.#emit()
  }

  async #updateReadState(m: MessageRecord, it: MailItem): Promise<void> {
    let changed = false
    if (m.outgoing) {
      for (const a of it.read_by ?? []) if (!m.readBy.includes(a)) (m.readBy.push(a), (changed = true))
      if (m.status === 'sending' || m.status === 'queued') {
        m.status = 'sent'
        changed = true
      }
      const before = m.status
      this.#statusFromReads(m)
      changed ||= before !== m.status
    } else if (it.read && m.unread) {
      m.unread = false
      changed = true
    }
    if (changed) {
      await this.#saveMessage({ ...m })
      this.#emit()
    }
  }

  /**
   * Opens an envelope into rec (text, refs), or sets rec.error with a human
   * sentence and keeps the envelope to try again later; false when it expired.
   */
  async #open(rec: MessageRecord, env: Envelope): Promise<boolean> {
    const h = env.header
    try {
      let m: Message
      if (isGroupHeader(h)) {
        const gk = await this.#groupKey(h.group!, h.epoch!)
        if (!gk) throw new EngineError('This message was sent before you joined or after you left the group.')
        const sender = h.from === this.me ? this.#bundle : await this.#senderBundle(h.from)
        const latest = [...(this.#groupKeys.get(h.group!)?.values() ?? [])].sort((a, b) => b.epoch - a.epoch)[0]
        m = await openGroup(env, gk, sender, { now: this.#now(), latest })
      } else {
        const sender = h.from === this.me ? this.#bundle : await this.#senderBundle(h.from)
        const recipients = h.from === this.me ? undefined : await Promise.all(h.to!.map((a) => this.#lookup(a)))
        m = await openDirect(env, this.#keys, sender, { now: this.#now(), recipients })
      }
      rec.text = m.body
      rec.refs = m.attachments.map(refToJSON)
      delete rec.error
      delete rec.envelope
      return true
    } catch (e) {
      if (e instanceof E2EEError && e.code === 'expired') return false
      if (e instanceof ApiError && retryable(e)) throw e // reconnect and try again
      rec.error = e instanceof EngineError && e.code === 'key_changed' ? e.message : `This message could not be opened: ${human(e)}`
      rec.envelope = JSON.parse(new TextDecoder().decode(envelopeJSON(env)))
      return true
    }
  }

  /** The sender's bundle, which must match the pin (first use pins it). */
  async #senderBundle(address: string): Promise<KeyBundle> {
    const { bundle, matches } = await this.#checked(address, false)
    if (!matches) throw new EngineError(`The safety number of ${address} changed. Accept the new key to read their new messages.`, 'key_changed')
    return bundle
  }

  // ---------------------------------------------------------------- groups

  async #groupKey(gid: string, epoch: number): Promise<GroupKey | undefined> {
    const held = this.#groupKeys.get(gid)?.get(epoch)
    if (held) return held
    let doc: { from?: string }
    try {
      doc = await this.#api.get<{ from?: string }>(`/api/groups/${encodeURIComponent(gid)}/key?epoch=${epoch}`)
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined
      throw e
    }
    const from = String(doc.from ?? '')
    const c = this.#conversations.get('g:' + gid)
    if (c && c.epoch === epoch && !isAdmin(c.members.find((m) => m.address === from)?.role))
      throw new EngineError('The group key was not distributed by an owner or admin.')
    const distributor = from === this.me ? this.#bundle : await this.#senderBundle(from)
    const gk = await openGroupKey(utf8(JSON.stringify(doc)), this.#keys, distributor)
    if (gk.group !== gid || gk.epoch !== epoch) throw new EngineError("The server answered another group's key.")
    await this.#keepGroupKey(gk)
    return gk
  }

  async #keepGroupKey(gk: GroupKey): Promise<void> {
    const m = this.#groupKeys.get(gk.group) ?? new Map<number, GroupKey>()
    if (m.has(gk.epoch)) return // the first key of an epoch stays (spec/e2ee.md §8.1)
    m.set(gk.epoch, gk)
    this.#groupKeys.set(gk.group, m)
    await this.#saveGroupKeys(gk.group)
  }

  /**
   * Lost epochs (lostepochs.ts): when this client held a key of an epoch
   * the group has not passed (its server was restored from a backup), it
   * reports it and answers the group as the server moved it; `same`: the
   * server's document of the current epoch is the one held (`making`).
   */
  async #passLostEpochs(g: GroupInfo, making: boolean): Promise<{ g: GroupInfo; same: boolean }> {
    const step = lostEpochStep(this.#groupKeys.get(g.id)?.values() ?? [], g.epoch, making)
    if (!step) return { g, same: false }
    let report: number
    if ('compare' in step) {
      let doc: { from?: unknown; created_at?: unknown; epoch?: unknown } | undefined
      try {
        doc = await this.#api.get(`/api/groups/${encodeURIComponent(g.id)}/key?epoch=${step.compare.epoch}`)
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e
      }
      if (sameDocument(step.compare, doc)) return { g, same: true }
      report = step.compare.epoch
    } else report = step.report
    const ng = (await this.#api.request<GroupInfo>('POST', `/api/groups/${encodeURIComponent(g.id)}/seen_epoch`, { body: { seen_epoch: report } })).data
    return { g: ng, same: false }
  }

  /** #passLostEpochs for a client that only looks at the group: a report that fails changes nothing. */
  async #passLostEpochsQuiet(g: GroupInfo): Promise<GroupInfo> {
    try {
      return (await this.#passLostEpochs(g, false)).g
    } catch {
      return g
    }
  }

  async #fetchGroup(gid: string): Promise<GroupInfo | undefined> {
    try {
      return await this.#api.get<GroupInfo>(`/api/groups/${encodeURIComponent(gid)}`)
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return undefined
      throw e
    }
  }

  /** Takes the server's view of a group into the conversation (name from meta). */
  async #adoptGroup(g: GroupInfo): Promise<ConversationRecord> {
    const id = 'g:' + g.id
    const old = this.#conversations.get(id)
    let name = old?.name
    if (g.meta) {
      try {
        const blob = fromB64(g.meta)
        if (blob) {
          const gk = await this.#groupKey(g.id, metaEpoch(blob))
          if (gk) name = (await openMeta(gk, blob)).name
        }
      } catch (e) {
        if (e instanceof ApiError && retryable(e)) throw e
        // a meta that does not open: keep the name known so far
      }
    }
    const c: ConversationRecord = {
      id, kind: 'group', group: g.id, members: g.members, epoch: g.epoch,
      retentionSeconds: g.retention_seconds > 0 ? g.retention_seconds : null,
      updatedAt: old?.updatedAt ?? (Date.parse(g.created_at) || this.#now()),
      ...(name !== undefined ? { name } : {}),
    }
    await this.#saveConversation(c)
    this.#emit()
    return c
  }

  async #groupChanged(gid: string): Promise<void> {
    const g = await this.#fetchGroup(gid)
    const id = 'g:' + gid
    if (!g) {
      const c = this.#conversations.get(id)
      if (c && !c.left) {
        await this.#saveConversation({ ...c, left: true, members: [] })
        this.#groupKeys.delete(gid)
        await this.#store.delete('kv', 'gk:' + gid)
        this.#emit()
      }
      return
    }
    await this.#adoptGroup(await this.#passLostEpochsQuiet(g))
    // An admin distributes the key of an epoch that has none (a member left).
    if (isAdmin(g.members.find((m) => m.address === this.me)?.role)) {
      await this.#withGroup(gid, async () => {
        const cur = await this.#fetchGroup(gid)
        if (!cur || !isAdmin(cur.members.find((m) => m.address === this.me)?.role)) return
        if (!(await this.#groupKey(gid, cur.epoch))) await this.#rekey(cur, this.#conversations.get(id)?.name)
      })
    }
  }

  /** Runs the group changes of this client one at a time per group (key and meta uploads). */
  #withGroup<T>(gid: string, f: () => Promise<T>): Promise<T> {
    const prev = this.#groupLocks.get(gid) ?? Promise.resolve()
    const run = prev.then(f, f)
    const tail = run.then(() => undefined, () => undefined)
    this.#groupLocks.set(gid, tail)
    void tail.then(() => {
      if (this.#groupLocks.get(gid) === tail) this.#groupLocks.delete(gid)
    })
    return run
  }

  /** Seals the name under the epoch's key (§19) unless the server's meta already is of that epoch. */
  async #ensureMeta(g: GroupInfo, gk: GroupKey, name: string | undefined): Promise<void> {
    if (name === undefined) return
    const blob = g.meta ? fromB64(g.meta) : null
    if (blob) {
      try {
        if (metaEpoch(blob) === gk.epoch && (await openMeta(gk, blob)).name === name) return
      } catch {
        // replaced below
      }
    }
    const meta = toB64(await sealMeta(gk, { name }))
    const ng = await this.#api.request<GroupInfo>('PATCH', `/api/groups/${encodeURIComponent(g.id)}`, { body: { meta } })
    await this.#adoptGroup(ng.data)
  }

  /** Makes, wraps and uploads the current epoch's key; re-seals the meta under it. */
  async #rekey(g: GroupInfo, name: string | undefined): Promise<GroupKey> {
    for (let attempt = 0; ; attempt++) {
      if (!isAdmin(g.members.find((m) => m.address === this.me)?.role)) throw new EngineError('Only the owner and admins can change the group.')
      // Never a second key for an epoch number this client held a key of.
      const passed = await this.#passLostEpochs(g, true)
      if (passed.same) {
        const held = await this.#groupKey(g.id, g.epoch)
        if (held) return held
      }
      if (passed.g !== g) {
        g = passed.g
        await this.#adoptGroup(g)
      }
      if (heldAtOrAbove(this.#groupKeys.get(g.id)?.values() ?? [], g.epoch))
        throw new EngineError(`This app already held a key of epoch ${g.epoch} of the group, from before its server was restored; it will not make a second one.`)
      const bundles: KeyBundle[] = [this.#bundle]
      for (const m of g.members) if (m.address !== this.me) bundles.push((await this.#checked(m.address, true)).bundle)
      const { key, document } = await sealGroupKey(this.#keys, g.id, g.epoch, this.#now(), bundles)
      try {
        await this.#api.request('PUT', `/api/groups/${encodeURIComponent(g.id)}/key`, { rawBody: new TextDecoder().decode(document) })
        await this.#keepGroupKey(key)
        await this.#ensureMeta(g, key, name)
        return key
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 409) throw e
        if (e.code === 'conflict') {
          // Another admin (or another device) distributed this epoch first: use theirs.
          const theirs = await this.#groupKey(g.id, g.epoch)
          if (theirs) {
            await this.#ensureMeta(g, theirs, name)
            return theirs
          }
        }
        if (attempt >= 2) throw e
        const ng = await this.#fetchGroup(g.id)
        if (!ng) throw new EngineError('You are no longer a member of this group.')
        g = ng
      }
    }
  }

  #group(conversationId: string): ConversationRecord {
    const c = this.#conversations.get(conversationId)
    if (!c || c.kind !== 'group') throw new EngineError('There is no such group.')
    if (c.left) throw new EngineError('You are no longer a member of this group.')
    return c
  }

  async createGroup(name: string, members: string[]): Promise<string> {
    try {
      const addrs = [...new Set(members.map((a) => this.#address(a)).filter((a) => a !== this.me))]
      for (const a of addrs) await this.#checked(a, true)
      const g = (await this.#api.request<GroupInfo>('POST', '/api/groups', { body: { members: addrs } })).data
      await this.#withGroup(g.id, async () => {
        const c = await this.#adoptGroup(g)
        await this.#saveConversation({ ...c, name, updatedAt: this.#now() })
        await this.#rekey(g, name)
      })
      this.#loaded.add('g:' + g.id)
      this.#emit()
      return 'g:' + g.id
    } catch (e) {
      throw asHuman(e)
    }
  }

  async addMember(conversationId: string, address: string): Promise<void> {
    try {
      const c = this.#group(conversationId)
      const a = this.#address(address)
      await this.#checked(a, true)
      await this.#withGroup(c.group!, async () => {
        const g = (await this.#api.request<GroupInfo>('POST', `/api/groups/${encodeURIComponent(c.group!)}/members`, {
          body: { address: a },
          messages: { conflict: `${a} is already a member.`, not_found: `There is no user ${a}.` },
        })).data
        await this.#adoptGroup(g)
        await this.#rekey(g, c.name)
      })
    } catch (e) {
      throw asHuman(e)
    }
  }

  async removeMember(conversationId: string, address: string): Promise<void> {
    const a = this.#address(address)
    if (a === this.me) return this.leaveGroup(conversationId)
    try {
      const c = this.#group(conversationId)
      await this.#withGroup(c.group!, async () => {
        await this.#api.request('DELETE', `/api/groups/${encodeURIComponent(c.group!)}/members/${encodeURIComponent(a)}`)
        const g = await this.#fetchGroup(c.group!)
        if (!g) throw new EngineError('You are no longer a member of this group.')
        await this.#adoptGroup(g)
        await this.#rekey(g, c.name)
      })
    } catch (e) {
      throw asHuman(e)
    }
  }

  async leaveGroup(conversationId: string): Promise<void> {
    try {
      const c = this.#group(conversationId)
      await this.#api.request('DELETE', `/api/groups/${encodeURIComponent(c.group!)}/members/${encodeURIComponent(this.me)}`)
      await this.#saveConversation({ ...c, left: true, members: [] })
      this.#groupKeys.delete(c.group!)
      await this.#store.delete('kv', 'gk:' + c.group!)
      this.#emit()
    } catch (e) {
      throw asHuman(e)
    }
  }

  // ---------------------------------------------------------------- conversations

  #address(input: string): string {
    const s = input.trim().toLowerCase()
    return s.includes('@') ? s : `${s}@${this.#server}`
  }

  async #ensureDirect(peer: string): Promise<ConversationRecord> {
    const id = 'd:' + peer
    let c = this.#conversations.get(id)
    if (!c) {
      c = { id, kind: 'direct', peer, members: [], retentionSeconds: this.#defaultRetention, updatedAt: this.#now() }
      await this.#saveConversation(c)
      void this.#refreshRetention(c)
      this.#emit()
    }
    return c
  }

  async openDirect(address: string): Promise<string> {
    try {
      const a = this.#address(address)
      if (a === this.me) throw new EngineError('You cannot start a conversation with yourself.')
      const c = this.#conversations.get('d:' + a)
      if (c && this.#connection !== 'online' && this.#pins.has(a)) return c.id
      await this.#checked(a, false)
      const cc = await this.#ensureDirect(a)
      return cc.id
    } catch (e) {
      throw asHuman(e)
    }
  }

  async loadHistory(conversationId: string): Promise<void> {
    const c = this.#conversations.get(conversationId)
    if (!c) throw new EngineError('There is no such conversation.')
    if (!this.#loaded.has(conversationId)) {
      this.#loaded.add(conversationId)
      this.#emit()
    }
    if (this.#connection === 'offline' || this.#sessionEnded || (c.kind === 'group' && c.left)) return
    try {
      const path = c.kind === 'direct' ? `/api/messages?with=${encodeURIComponent(c.peer!)}&limit=100` : `/api/groups/${encodeURIComponent(c.group!)}/messages?limit=100`
      const page = await this.#api.get<{ messages: MailItem[] }>(path)
      for (const it of [...page.messages].reverse()) await this.#ingest(it)
    } catch (e) {
      if (e instanceof ApiError && retryable(e)) return // the cache is what there is
      throw asHuman(e)
    }
  }

  // ---------------------------------------------------------------- sending

  async send(conversationId: string, text: string, opts: SendOptions = {}): Promise<void> {
    const files = []
    for (const f of opts.files ?? []) files.push({ name: f.name, mime: f.type || 'application/octet-stream', data: toB64(new Uint8Array(await f.arrayBuffer())) })
    await this.#queue(conversationId, text, files, { expiresInSeconds: opts.expiresInSeconds })
  }

  /** Writes a new message to the outbox (with its files, or the references of files uploaded before) and starts the drainer. */
  async #queue(
    conversationId: string,
    text: string,
    files: OutboxRecord['files'],
    more: { expiresInSeconds?: number; refs?: RefJSON[]; replaces?: string },
  ): Promise<string> {
    const c = this.#conversations.get(conversationId)
    if (!c) throw new EngineError('There is no such conversation.')
    if (c.kind === 'group' && c.left) throw new EngineError('You are no longer a member of this group.')
    const id = [...random(16)].map((b) => b.toString(16).padStart(2, '0')).join('')
    const now = this.#now()
    const ob: OutboxRecord = {
      id, conversationId, text, files, queuedAt: now,
      ...(more.expiresInSeconds ? { expiresInSeconds: more.expiresInSeconds } : {}),
      ...(more.refs ? { refs: more.refs } : {}),
      ...(more.replaces ? { replaces: more.replaces } : {}),
    }
    await this.#store.put('outbox', id, ob)
    const rec: MessageRecord = {
      id, conversationId, sender: this.me, outgoing: true, sentAt: now, text, attachments: [], status: 'queued', readBy: [],
      refs: more.refs ?? files.map((f) => ({ fileId: '', key: '', mime: f.mime, name: f.name, sha256: '', size: fromB64(f.data)!.length })),
    }
    await this.#saveMessage(rec)
    await this.#saveConversation({ ...c, updatedAt: now })
    this.#emit()
    this.#kick()
    return id
  }

  async retry(messageId: string): Promise<void> {
    const m = this.#messages.get(messageId)
    if (!m || !m.outgoing || m.status !== 'failed') return
    const ob = await this.#store.get<OutboxRecord>('outbox', messageId)
    if (!ob && m.deliveryFailed) {
      // Our server took it, another did not: its id is spent, so it goes
      // again as a new message (a new envelope, sealed anew) in this one's
      // place, with the same files: they are still on our server, listed
      // by this message, which is deleted for everyone once the new one is
      // acknowledged (a copy that reached anyone after all goes with it).
      // Until then it is kept, hidden, so that the history the server
      // still lists does not bring it back.
      const refs = m.refs ?? []
      if (refs.some((r) => r.fileId === '') || (m.text === '' && refs.length === 0)) throw new EngineError('This message can no longer be sent again; write it anew.')
      const expiresInSeconds = m.expiresAt !== undefined ? Math.max(1, Math.round((m.expiresAt - m.sentAt) / 1000)) : undefined
      const id = await this.#queue(m.conversationId, m.text, [], { expiresInSeconds, refs: refs.map((r) => ({ ...r })), replaces: messageId })
      await this.#saveMessage({ ...this.#messages.get(messageId)!, replacedBy: id })
      this.#emit()
      return
    }
    if (!ob) throw new EngineError('This message can no longer be sent again; write it anew.')
    delete ob.envelope // sealed again: the refusal may have been about the keys
    await this.#store.put('outbox', messageId, ob)
    const next = { ...m, status: 'queued' as const }
    delete next.error
    await this.#saveMessage(next)
    this.#emit()
    this.#kick()
  }

  /** Starts the outbox drainer (if not running). */
  #kick(): void {
    if (this.#closed || this.#sessionEnded) return
    if (this.#drainTimer) {
      clearTimeout(this.#drainTimer)
      this.#drainTimer = undefined
    }
    this.#draining ??= this.#drain()
      .catch(() => undefined) // storage closed under it (logout): nothing left to send
      .finally(() => {
        this.#draining = undefined
      })
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#closed || this.#sessionEnded) return
      const queue = (await this.#store.all<OutboxRecord>('outbox')).map((r) => r.value).sort((a, b) => a.queuedAt - b.queuedAt)
      const next = queue.find((o) => this.#messages.get(o.id)?.status === 'queued' || this.#messages.get(o.id)?.status === 'sending')
      try {
        if (!next) {
          await this.#flushReads()
          return
        }
        await this.#sendOne(next)
        this.#drainBackoff = 0
      } catch (e) {
        const m = next && this.#messages.get(next.id)
        if (retryable(e)) {
          if (m) await this.#saveMessage({ ...m, status: 'queued' })
          this.#emit()
          const ra = e instanceof ApiError && e.retryAfter !== undefined ? e.retryAfter * 1000 : 0
          this.#drainBackoff = Math.min(Math.max(this.#drainBackoff * 2, this.#minBackoff), this.#maxBackoff)
          this.#drainTimer = setTimeout(() => this.#kick(), Math.max(ra, this.#drainBackoff))
          return
        }
        if ((e instanceof ApiError && e.code === 'session_ended') || !next) return
        if (m) await this.#saveMessage({ ...m, status: 'failed', error: human(e) })
        this.#emit()
      }
    }
  }

  async #sendOne(ob: OutboxRecord): Promise<void> {
    const m = this.#messages.get(ob.id)
    if (!m) {
      await this.#store.delete('outbox', ob.id)
      return
    }
    const c = this.#conversations.get(ob.conversationId)
    if (!c) throw new EngineError('The conversation is gone.')
    await this.#saveMessage({ ...m, status: 'sending' })
    this.#emit()
    // 1. Attachments: encrypt and upload once (kept in the outbox).
    if (ob.files.length > 0 && !ob.refs) await this.#upload(ob)
    // 2. Seal (once: a retry posts the same bytes under the same id).
    const path = c.kind === 'direct' ? '/api/messages' : `/api/groups/${encodeURIComponent(c.group!)}/messages`
    let reuploaded = false
    for (let attempt = 0; ; attempt++) {
      let recipients: string[]
      if (!ob.envelope) {
        const sentAt = this.#now()
        const ttl = [ob.expiresInSeconds, c.retentionSeconds ?? undefined].filter((x): x is number => !!x)
        const expiresAt = ttl.length ? sentAt + Math.min(...ttl) * 1000 : undefined
        const message: Message = { type: 'text', body: ob.text, attachments: (ob.refs ?? []).map(refFromJSON) }
        let env: Envelope
        if (c.kind === 'direct') {
          const { bundle } = await this.#checked(c.peer!, true)
          env = await sealDirect(this.#keys, [bundle], { id: ob.id, conversation: await conversationHeaderId(this.me, c.peer!), sentAt, expiresAt, message })
          recipients = [c.peer!]
        } else {
          const fetched = await this.#fetchGroup(c.group!)
          if (!fetched) throw new EngineError('You are no longer a member of this group.')
          const g = await this.#passLostEpochsQuiet(fetched)
          await this.#adoptGroup(g)
          let gk = await this.#groupKey(g.id, g.epoch)
          if (!gk && isAdmin(g.members.find((x) => x.address === this.me)?.role))
            gk = await this.#withGroup(g.id, async () => (await this.#groupKey(g.id, g.epoch)) ?? this.#rekey(g, this.#conversations.get(c.id)?.name))
          if (!gk) throw new ApiError('unavailable', 503, 'Waiting for an admin to share the new group key.')
          env = await sealGroup(this.#keys, gk, { id: ob.id, sentAt, expiresAt, message })
          recipients = g.members.map((x) => x.address).filter((a) => a !== this.me)
        }
        ob.envelope = new TextDecoder().decode(envelopeJSON(env))
        await this.#store.put('outbox', ob.id, ob)
        const cur = this.#messages.get(ob.id) ?? m
        await this.#saveMessage({ ...cur, sentAt, recipients, refs: ob.refs ?? [], ...(expiresAt !== undefined ? { expiresAt } : {}) })
      }
      // 3. Post; the id is the idempotency key.
      try {
        const r = await this.#api.request<{ id: string; seq: number }>('POST', path, { rawBody: ob.envelope })
        if (r.data.id !== ob.id) throw new EngineError('The server acknowledged another message.')
        break
      } catch (e) {
        if (e instanceof ApiError && e.code === 'unknown_file' && ob.files.length > 0 && !reuploaded) {
          // The upload went (unreferenced for too long while the message
          // could not be sent): the files are still here, so up again and seal anew.
          reuploaded = true
          delete ob.envelope
          await this.#upload(ob)
          continue
        }
        if (e instanceof ApiError && e.code === 'invalid_request' && /stale_epoch/.test(e.serverMessage)) throw e
        if (e instanceof ApiError && e.status === 409 && c.kind === 'group' && attempt < 2 && /epoch/i.test(e.serverMessage + e.code)) {
          delete ob.envelope // the group moved on: seal again with the new epoch's key
          continue
        }
        throw e
      }
    }
    // 4. The failed message this one sends again goes, now that its files are listed by this one.
    if (ob.replaces) {
      try {
        await this.#api.request('DELETE', `/api/messages/${encodeURIComponent(ob.replaces)}`)
      } catch (e) {
        if (retryable(e) || (e instanceof ApiError && e.code === 'session_ended')) throw e // posted again (the same bytes: 200) and deleted then
        // 404: gone already (expired, deleted elsewhere)
      }
      await this.#forget(ob.replaces)
    }
    await this.#store.delete('outbox', ob.id)
    const cur = this.#messages.get(ob.id)
    if (cur && (cur.status === 'sending' || cur.status === 'queued')) {
      const done: MessageRecord = { ...cur, status: 'sent' }
      this.#statusFromReads(done)
      await this.#saveMessage(done)
      this.#emit()
    }
  }

  /** Encrypts and uploads the outbox record's files; their references are kept in the outbox. */
  async #upload(ob: OutboxRecord): Promise<void> {
    const refs: RefJSON[] = []
    for (const f of ob.files) {
      const sealed = await sealAttachment(fromB64(f.data)!)
      const r = await this.#api.requestBytes('POST', '/api/files', { bytes: sealed.blob })
      const fr = JSON.parse(new TextDecoder().decode(r.data)) as { id: string; size: number }
      if (fr.size !== sealed.blob.length) throw new EngineError('The server stored another number of bytes than were sent.')
      refs.push({ fileId: fr.id, key: toB64(sealed.key), mime: f.mime, name: f.name, sha256: toB64(sealed.sha256), size: sealed.size })
    }
    ob.refs = refs
    await this.#store.put('outbox', ob.id, ob)
  }

  // ---------------------------------------------------------------- reading, deleting, files

  async #onRead(id: string, by: string): Promise<void> {
    const m = this.#messages.get(id)
    if (!m) return
    if (by === this.me) {
      if (m.unread) await this.#saveMessage({ ...m, unread: false })
    } else if (m.outgoing && !m.readBy.includes(by)) {
      const next = { ...m, readBy: [...m.readBy, by] }
      this.#statusFromReads(next)
      await this.#saveMessage(next)
    } else return
    this.#emit()
  }

  /**
   * Marks the conversation's unread messages read here at once and queues
   * the marks: the drainer tells the server (POST /api/messages/{id}/read)
   * after the outbox, so a mark made offline goes when the connection returns.
   */
  async markRead(conversationId: string): Promise<void> {
    const unread = [...this.#messages.values()].filter((m) => m.conversationId === conversationId && m.unread)
    if (!unread.length) return
    for (const m of unread) await this.#saveMessage({ ...m, unread: false, readPending: true })
    this.#emit()
    this.#kick()
  }

  /** Sends the queued read marks; a retryable failure is thrown to the drainer's backoff. */
  async #flushReads(): Promise<void> {
    for (const m of [...this.#messages.values()]) {
      if (!m.readPending) continue
      try {
        await this.#api.request('POST', `/api/messages/${m.id}/read`)
      } catch (e) {
        if (retryable(e) || (e instanceof ApiError && e.code === 'session_ended')) throw e
        // 404: gone meanwhile; another refusal will not change on a retry
      }
      const cur = this.#messages.get(m.id)
      if (cur?.readPending) {
        const { readPending: _, ...rest } = cur
        await this.#saveMessage(rest)
      }
    }
  }

  async deleteMessage(messageId: string): Promise<void> {
    const m = this.#messages.get(messageId)
    if (!m) return
    const queued = await this.#store.get<OutboxRecord>('outbox', messageId)
    // A retry not sent yet takes the failed message it replaces with it.
    for (const id of [messageId, ...(queued?.replaces ? [queued.replaces] : [])]) {
      if (id !== messageId || !queued || m.status === 'sending') {
        try {
          await this.#api.request('DELETE', `/api/messages/${id}`)
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw asHuman(e)
        }
      }
      await this.#forget(id)
    }
  }

  async openAttachment(messageId: string, fileId: string): Promise<Blob> {
    const m = this.#messages.get(messageId)
    const ref = m?.refs?.find((r) => r.fileId === fileId && r.fileId !== '')
    if (!m || !ref) throw new EngineError('This attachment is not available.')
    try {
      if (m.outgoing) {
        const ob = await this.#store.get<OutboxRecord>('outbox', messageId)
        const f = ob?.files.find((x) => x.name === ref.name)
        if (ob && f) return new Blob([fromB64(f.data)!], { type: ref.mime })
      }
      const r = await this.#api.requestBytes('GET', `/api/files/${encodeURIComponent(fileId)}`, {
        messages: { not_found: 'This attachment is gone from the server.' },
      })
      const data = await openBlob(r.data, refFromJSON(ref))
      return new Blob([data], { type: ref.mime })
    } catch (e) {
      // A file of another server's user: this user's server fetches it
      // from there (spec/federation.md §12.4), which may be down now, or
      // no longer have it.
      if (e instanceof ApiError && !m.outgoing && serverOf(m.sender) !== this.#server) {
        if (e.code === 'origin_unreachable') throw remoteFileUnreachable(m.sender)
        if (e.status === 404) throw remoteFileGone(m.sender)
      }
      throw asHuman(e)
    }
  }

  // ---------------------------------------------------------------- retention

  async setRetention(conversationId: string, seconds: number | null): Promise<void> {
    const c = this.#conversations.get(conversationId)
    if (!c) throw new EngineError('There is no such conversation.')
    try {
      if (c.kind === 'direct') {
        await this.#api.request('PUT', `/api/conversations/${encodeURIComponent(c.peer!)}/retention`, { body: { seconds: seconds ?? 0 } })
        await this.#saveConversation({ ...c, retentionSeconds: seconds })
      } else {
        const g = (await this.#api.request<GroupInfo>('PUT', `/api/groups/${encodeURIComponent(c.group!)}/retention`, {
          body: { seconds: seconds ?? 0 },
          messages: { forbidden: 'Only the owner and admins can change how long messages are kept.' },
        })).data
        await this.#adoptGroup(g)
      }
      this.#emit()
    } catch (e) {
      throw asHuman(e)
    }
  }

  async setDefaultRetention(seconds: number | null): Promise<void> {
    try {
      await this.#api.request('PUT', '/api/account-settings', { body: { default_retention_seconds: seconds ?? 0 } })
      this.#defaultRetention = seconds
      await this.#store.put('kv', 'defaultRetention', seconds)
      this.#emit()
    } catch (e) {
      throw asHuman(e)
    }
  }

  // ---------------------------------------------------------------- trust

  async safety(address: string): Promise<SafetyInfo> {
    const a = this.#address(address)
    try {
      if (!this.#pins.has(a)) await this.#checked(a, false)
      const pin = this.#pins.get(a)!
      const own = await this.#partyHash(this.me, this.#keys.identityPublic)
      const peer = await this.#partyHash(a, pin.identityKey)
      return {
        address: a,
        safetyNumber: displaySafetyNumber(safetyNumber(digits(own), digits(peer))),
        qrPayload: qrPayload(own, peer),
        trust: this.#contact(a).trust,
        directory: await this.#witnessing(),
      }
    } catch (e) {
      throw asHuman(e)
    }
  }

  /**
   * Who vouches for the homeserver's directory head, and the forks it
   * reports (spec/e2ee.md §6.4 "Witnesses"). The head must be the one this
   * account verified or extend it; a co-signature counts only under the
   * key pinned for the witness's own directory. Never throws: a failure is
   * a sentence in `error`.
   */
  async #witnessing(): Promise<DirectoryWitnessing> {
    try {
      const a = parseCosignatures(JSON.stringify(await this.#api.get<unknown>('/api/keys/cosignatures', { auth: false })))
      let state = this.#dir
      if (state.serverKey === undefined) throw new E2EEError('server_key_changed', 'the directory answered under another key')
      // The pinned key, or a chain of key-change statements from it (the
      // server rotated its key; spec/e2ee.md §6.4 step 2).
      const path = await acceptServerKey(this.#server, state.serverKey, a.serverKey, a.keyChanges)
      if (a.head.server !== this.#server) throw new E2EEError('bad_proof', 'a head of another server')
      await verifyTreeHead(a.head, a.serverKey)
      await checkHeadProgress(a.head, { ...state }, (from, to) => this.#consistency(from, to))
      if (!constantTimeEqual(state.serverKey, a.serverKey)) state = await this.#repinOwnDirectory(a.serverKey, path)
      const vouchedBy: string[] = []
      for (const c of a.cosignatures) {
        if (c.witness === this.#server || !covers(c, a.head)) continue
        const pin = (await this.#remoteDir(c.witness)).serverKey
        if (!pin || !constantTimeEqual(pin, c.witnessKey)) continue
        try {
          await verifyCosignature(c, pin)
          if (!vouchedBy.includes(c.witness)) vouchedBy.push(c.witness)
        } catch {
          // a co-signature that does not verify vouches for nothing
        }
      }
      vouchedBy.sort(compareBytewise)
      const forks: { server: string; verified: boolean; reason?: string }[] = []
      const documents = new Map<string, Promise<EarlierServerKey[]>>()
      for (const f of parseForks(JSON.stringify(await this.#api.get<unknown>('/api/keys/forks', { auth: false })))) {
        const dir = f.server === this.#server ? state : await this.#remoteDir(f.server)
        const pin = dir.serverKey
        let verified = false
        let reason: string | undefined
        if (pin) {
          const keys = [pin, ...(dir.earlier ?? [])]
          try {
            await verifyFork(f, pin)
            reason = `both histories are signed with the key this app pinned for ${f.server}.`
          } catch {
            try {
              // Under a key this client followed to the pin: evidence made
              // before a key rotation stays evidence.
              await verifyFork(f, keys)
              reason = `they are signed with a key ${f.server} used before its current one; this app followed its key change.`
            } catch (e) {
              if (!(e instanceof E2EEError) || e.code !== 'bad_signature') continue // evidence that does not check out is not evidence
              // Under the earlier keys the pinned key itself names as the
              // server's (its signed server document): a client that only
              // ever pinned the new key (spec/e2ee.md §6.4 "Witnesses").
              let vouched = documents.get(f.server)
              if (!vouched) {
                vouched = this.#api
                  .get<unknown>(`/api/keys/forks/document?server=${encodeURIComponent(f.server)}`, { auth: false })
                  .then((d) => earlierKeysFromDocument(JSON.stringify(d), f.server, pin))
                documents.set(f.server, vouched)
              }
              try {
                await verifyFork(f, keys, await vouched)
                reason = `they are signed with a key ${f.server} used before its current one, and its current key names that key as its own.`
              } catch {
                continue
              }
            }
          }
          verified = true
        }
        const known = forks.find((x) => x.server === f.server)
        if (known) {
          if (verified && !known.verified) Object.assign(known, { verified, reason })
        } else forks.push(verified ? { server: f.server, verified, reason } : { server: f.server, verified })
      }
      return { vouchedBy, forks }
    } catch (e) {
      return { vouchedBy: [], forks: [], error: human(e) }
    }
  }

  async markVerified(address: string): Promise<void> {
    const a = this.#address(address)
    const pin = this.#pins.get(a)
    if (!pin) throw new EngineError(`You have no conversation with ${a} yet.`)
    if (this.#contact(a).trust === 'changed') throw new EngineError(`The safety number of ${a} changed. Accept the new key first, then verify it.`)
    const key = pin.identityKey
    const now = this.#now()
    await this.#changePins((p) => {
      const cur = p.get(a)
      if (cur && constantTimeEqual(cur.identityKey, key)) p.set(a, { ...cur, verified: true, verifiedAt: now })
    })
  }

  async verifyScanned(payload: string): Promise<string> {
    const own = await this.#partyHash(this.me, this.#keys.identityPublic)
    let lastErr: unknown = new E2EEError('fingerprint_mismatch', 'no contact')
    for (const [a, pin] of this.#pins) {
      try {
        verifyQrPayload(payload.trim(), own, await this.#partyHash(a, pin.identityKey))
      } catch (e) {
        if (e instanceof E2EEError && e.code !== 'fingerprint_mismatch') throw asHuman(e)
        lastErr = e
        continue
      }
      if (this.#contact(a).trust === 'changed') throw new EngineError(`The code matches the old key of ${a}, which changed since. Ask them to show their code again after you accept the new key.`)
      await this.markVerified(a)
      return a
    }
    if (payload.trim().startsWith('PLSN1:') && payload.trim().length === 134) throw asHuman(lastErr)
    throw asHuman(new E2EEError('malformed', 'not a safety-number code'))
  }

  async acceptKeyChange(address: string): Promise<void> {
    const a = this.#address(address)
    try {
      this.#bundles.delete(a)
      const b = await this.#lookup(a, true)
      const old = this.#pins.get(a)
      const firstSeen = Math.max(this.#now(), (old?.firstSeen ?? 0) + 1)
      await this.#changePins((p) => {
        const cur = p.get(a)
        if (!cur || !constantTimeEqual(cur.identityKey, b.identityKey)) p.set(a, { identityKey: b.identityKey, firstSeen, verified: false })
      })
      await this.#reopen((m) => m.sender === a) // the messages that waited for this
      this.#emit()
    } catch (e) {
      throw asHuman(e)
    }
  }

  // ---------------------------------------------------------------- account

  /** The auth key of a password under the account's KDF, refused if it does not open the stored keys. */
  async #proveCurrent(password: string): Promise<{ authKey: Bytes; kek: CryptoKey; ed: Bytes; rsa: Bytes }> {
    const a = this.#store.account
    const pk = await derivePasswordKeys(password, { kdf: a.kdf, iterations: a.iterations, salt: new Uint8Array(a.salt) })
    try {
      const u = await unwrapPrivateKeys(pk.kek, this.me, new Uint8Array(a.nonce), new Uint8Array(a.encryptedPrivateKey))
      return { authKey: pk.authKey, kek: pk.kek, ed: u.ed25519Pkcs8, rsa: u.rsaPkcs8 }
    } catch {
      throw new EngineError('The current password is wrong.', 'wrong_password')
    }
  }

  async changePassword(current: string, next: string): Promise<void> {
    try {
      const cur = await this.#proveCurrent(current)
      await this.#syncPins() // read under the old kek before it goes
      const salt = random(16)
      const params = { kdf: 'pbkdf2-sha256', iterations: MIN_ITERATIONS, salt }
      const pk = await derivePasswordKeys(next, params)
      const w = await wrapPrivateKeys(pk.kek, this.me, cur.ed, cur.rsa)
      cur.ed.fill(0)
      cur.rsa.fill(0)
      await this.#api.request('PUT', '/api/account-settings', {
        body: {
          password: {
            current_auth_key: toB64(cur.authKey), auth_key: toB64(pk.authKey),
            encrypted_private_key: toB64(w.encryptedPrivateKey), salt: toB64(salt), nonce: toB64(w.nonce),
          },
        },
        messages: { wrong_password: 'The current password is wrong.' },
      })
      this.#kek = pk.kek
      await this.#store.updateAccount({ kek: pk.kek, kdf: params.kdf, iterations: params.iterations, salt, nonce: w.nonce, encryptedPrivateKey: w.encryptedPrivateKey })
      // Re-seal the pins under the new kek (§18.2): write ours, merging anything written meanwhile under either kek.
      const oldKek = cur.kek
      for (let i = 0; i < 8; i++) {
        const r = await this.#api.request<{ version: number; blob: string }>('GET', '/api/pinned_keys')
        const blob = fromB64(r.data.blob) ?? new Uint8Array()
        let theirs: Pins
        try {
          theirs = await openPins(this.#kek, this.me, blob)
        } catch {
          theirs = await openPins(oldKek, this.me, blob)
        }
        this.#pins = mergePins(theirs, this.#pins)
        if (this.#pins.size === 0 && r.data.version === 0) break
        try {
          const wr = await this.#api.request<{ version: number }>('PUT', '/api/pinned_keys', {
            body: { blob: toB64(await sealPins(this.#kek, this.me, this.#pins)) },
            headers: { 'If-Match': `"${r.data.version}"` },
          })
          this.#pinsVersion = wr.data.version
          break
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 412)) throw e
        }
      }
      await this.#savePins()
    } catch (e) {
      throw asHuman(e)
    }
  }

  /** Signs in again after the session ended (the keys must be this account's). */
  async resume(password: string): Promise<void> {
    try {
      const acc = await apiLogin(this.#api, this.me.slice(0, this.me.lastIndexOf('@')), password)
      if (acc.address !== this.me) throw new EngineError('That password is of another account.')
      this.#kek = acc.kek
      await this.#store.updateAccount({ kek: acc.kek, kdf: acc.params.kdf, iterations: acc.params.iterations, salt: new Uint8Array(acc.params.salt), nonce: acc.nonce, encryptedPrivateKey: acc.encryptedPrivateKey, bundle: new TextDecoder().decode(acc.bundle.json) })
      this.#sessionEnded = false
      this.#emit()
      this.#wake?.()
      this.#kick()
    } catch (e) {
      throw asHuman(e)
    }
  }

  async #wipe(): Promise<void> {
    this.close()
    await this.#store.destroy()
    if ((await this.#device.current()) === this.me) await this.#device.setCurrent(undefined)
    this.#api.clearSession()
    this.#onGone?.()
  }

  async logout(): Promise<void> {
    this.#leaving = true
    await this.#push.signOut()
    try {
      await this.#api.request('POST', '/api/revoke', { body: {} })
    } catch (e) {
      // Offline or already ended: the device forgets the account anyway.
      if (!(e instanceof ApiError)) {
        this.#leaving = false
        throw asHuman(e)
      }
    }
    await this.#wipe()
  }

  async logoutEverywhere(): Promise<void> {
    this.#leaving = true
    await this.#push.signOut()
    try {
      await this.#api.request('POST', '/api/revoke', { body: { all: true } })
    } catch (e) {
      this.#leaving = false
      throw asHuman(e)
    }
    await this.#wipe()
  }

  async deleteAccount(password: string): Promise<void> {
    try {
      const cur = await this.#proveCurrent(password)
      cur.ed.fill(0)
      cur.rsa.fill(0)
      this.#leaving = true
      await this.#push.signOut()
      await this.#api.request('DELETE', '/api/account', { body: { auth_key: toB64(cur.authKey) }, messages: { wrong_password: 'The password is wrong.' } })
    } catch (e) {
      this.#leaving = false
      throw asHuman(e)
    }
    await this.#wipe()
  }

  // ---------------------------------------------------------------- notifications

  /** The registration with the homeserver, once per start (again on the next connection after a failure). */
  #refreshPush(): void {
    if (this.#push.refreshed || this.#closed || this.#leaving) return
    this.#push.refresh().catch(() => undefined)
  }

  enablePush(): Promise<void> {
    // Not async: the permission is asked before anything is awaited, while
    // the browser still counts the click as the user's gesture.
    return this.#push.enable()
  }

  disablePush(): Promise<void> {
    return this.#push.disable()
  }

  async newestUnread(): Promise<string | null> {
    if (this.#connection !== 'online' && !this.#sessionEnded && !this.#closed) {
      this.#wake?.() // a connection in backoff tries now
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t)
          off()
          resolve()
        }
        // After that long the cache answers: the user sees at least what arrived before.
        const t = setTimeout(done, UNREAD_WAIT_MS)
        const off = this.subscribe(() => {
          if (this.#connection === 'online' || this.#sessionEnded || this.#closed) done()
        })
      })
    }
    let best: MessageRecord | undefined
    const now = this.#now()
    for (const m of this.#messages.values()) {
      if (!m.unread || m.outgoing || (m.expiresAt !== undefined && m.expiresAt <= now)) continue
      if (!this.#conversations.has(m.conversationId)) continue
      if (!best || m.sentAt > best.sentAt || (m.sentAt === best.sentAt && (m.seq ?? 0) > (best.seq ?? 0))) best = m
    }
    return best?.conversationId ?? null
  }

  /** Stops the connection and timers (the page goes away, or the account was wiped). */
  close(): void {
    this.#closed = true
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    if (this.#drainTimer) clearTimeout(this.#drainTimer)
    for (const f of this.#offHandlers) f()
    this.#wake?.()
    this.#ws?.close()
    this.#listeners.clear()
    this.#store.close()
  }
}

/** What is kept of a server's directory (kv "directory", "directory:<server>", the device's pin). */
function dirJSON(s: ServerState): { serverKey: string; head: unknown; earlier?: string[] } {
  return { serverKey: toB64(s.serverKey!), head: headJSON(s), ...(s.earlier?.length ? { earlier: s.earlier.map(toB64) } : {}) }
}

/** Earlier keys as kept (b64); a malformed one is dropped (it would verify nothing). */
function earlierKeys(a: readonly string[]): Uint8Array[] {
  return a.map((k) => fromB64(k)).filter((k): k is Uint8Array => k !== null && k.length === 32)
}

function headJSON(s: ServerState): unknown {
  const h = s.lastHead
  if (!h) return undefined
  return { root_hash: toB64(h.rootHash), server: h.server, signature: toB64(h.signature), timestamp: h.timestamp, tree_size: h.treeSize }
}

/** Why another homeserver did not take a message, as a sentence. */
function deliveryFailure(server: string, code: string, detail?: string): string {
  switch (code) {
    case 'unknown_recipient':
      return `Not delivered: ${server} has no such user.`
    case 'expired':
      return `Not delivered: the message expired before ${server} could take it.`
    case 'timeout':
      return `Not delivered: ${server} could not be reached for too long${detail ? ` (${detail})` : ''}. Retry when it is back.`
    default:
      return `Not delivered: ${server} refused the message${code ? ` (${code})` : ''}.`
  }
}

/** The header's conversation id of a direct conversation, the same on both sides: the Go SDK's ConversationID. */
export async function conversationHeaderId(a: string, b: string): Promise<string> {
  const parts = [...new Set([a, b])].sort(compareBytewise)
  return 'dm-' + toHex((await sha256(utf8(parts.join('\n')))).subarray(0, 16))
}
