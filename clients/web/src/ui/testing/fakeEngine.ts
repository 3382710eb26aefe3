// An in-memory Engine and Auth for the screens' tests and the visual
// preview. TEST-ONLY: production code never imports this file.
//
// It keeps the contract of src/engine/types.ts: every change makes a new
// EngineState object and then calls the subscribers; getState returns the
// same object until something changes. It does no cryptography; its
// "network" is a set of control methods (receive, deliver, readBy, endSession,
// changeKey, setConnection, failNextSend) a test calls to play the other side.
import type {
  Auth, ChatMessage, Contact, Conversation, DirectoryWitnessing, Engine, EngineState, GroupMember, Progress, PushState, SafetyInfo, SendOptions,
} from '../../engine/types'

export interface Account {
  username: string
  password: string
}

/** A promise a test can hold open, to see the screen while something is under way. */
export class Gate {
  private waiting: (() => void)[] = []
  private open = true
  close(): void {
    this.open = false
  }
  release(): void {
    this.open = true
    const w = this.waiting
    this.waiting = []
    w.forEach((f) => f())
  }
  pass(): Promise<void> {
    if (this.open) return Promise.resolve()
    return new Promise((r) => this.waiting.push(r))
  }
}

function hashDigits(s: string, n: number): string {
  // FNV-1a over the text, stretched: stable fake digits, not a real safety number.
  let out = ''
  let h = 0x811c9dc5
  for (let round = 0; out.length < n; round++) {
    for (const c of s + round) {
      h ^= c.charCodeAt(0)
      h = Math.imul(h, 0x01000193) >>> 0
    }
    out += String(h % 100000).padStart(5, '0')
  }
  return out.slice(0, n)
}

export interface Call {
  method: string
  args: unknown[]
}

export class FakeEngine implements Engine {
  private state: EngineState
  private listeners = new Set<() => void>()
  private nextId = 1
  private timers = new Map<string, ReturnType<typeof setTimeout>>()
  private failures: string[] = []
  /** every Engine method call, in order */
  readonly calls: Call[] = []
  /** addresses the fake directory knows */
  readonly directory = new Set<string>()
  /** held by send() after the message is queued and before it is acknowledged */
  readonly sendGate = new Gate()
  /** held by every other async method, to see their progress */
  readonly actionGate = new Gate()
  loggedOut = false
  deleted = false
  /** what safety() reports of the directories' witnesses (a test sets it) */
  witnessing: DirectoryWitnessing | undefined = undefined
  /** what the fake browser answers when enablePush() asks for the permission */
  pushPermission: NotificationPermission = 'granted'
  /** held by newestUnread() while the fake "syncs" */
  readonly syncGate = new Gate()

  constructor(
    private account: Account,
    address: string,
    init: Partial<EngineState> = {},
  ) {
    this.state = {
      me: address,
      connection: 'online',
      conversations: [],
      messages: {},
      contacts: {},
      defaultRetentionSeconds: null,
      sessionEnded: false,
      push: 'off',
      ...init,
    }
    for (const c of this.state.conversations) {
      if (c.peer) this.directory.add(c.peer)
      for (const m of c.members) this.directory.add(m.address)
    }
  }

  // ---- the contract ----

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  getState(): EngineState {
    return this.state
  }

  async openDirect(address: string): Promise<string> {
    this.record('openDirect', address)
    await this.actionGate.pass()
    this.failIfAsked()
    const a = address.trim().toLowerCase()
    if (!/^[^@\s]+@[^@\s]+$/.test(a)) throw new Error('Enter an address like alice@example.org.')
    if (a === this.state.me) throw new Error('That is your own address.')
    if (!this.directory.has(a)) throw new Error(`There is no account ${a}.`)
    const id = 'd:' + a
    if (!this.conv(id)) {
      this.update((s) => ({
        ...s,
        conversations: [this.newConversation(id, 'direct', a, []), ...s.conversations],
        contacts: s.contacts[a] ? s.contacts : { ...s.contacts, [a]: { address: a, trust: 'unverified', wasVerified: false } },
      }))
    }
    return id
  }

  async loadHistory(conversationId: string): Promise<void> {
    this.record('loadHistory', conversationId)
    this.failIfAsked()
    if (!this.state.messages[conversationId]) this.update((s) => ({ ...s, messages: { ...s.messages, [conversationId]: [] } }))
  }

  async send(conversationId: string, text: string, opts: SendOptions = {}): Promise<void> {
    this.record('send', conversationId, text, opts)
    this.failIfAsked()
    const c = this.conv(conversationId)
    if (!c) throw new Error('That conversation is gone.')
    if (c.peer && this.state.contacts[c.peer]?.trust === 'changed' && this.state.contacts[c.peer]?.wasVerified)
      throw new Error(`${c.peer}'s key changed. Verify it before sending.`)
    const id = `m${this.nextId++}`
    const now = Date.now()
    const attachments = (opts.files ?? []).map((f, i) => ({ fileId: `${id}-f${i}`, name: f.name, mime: f.type || 'application/octet-stream', size: f.size }))
    for (const [i, f] of (opts.files ?? []).entries()) this.files.set(`${id}-f${i}`, f)
    const limits = [opts.expiresInSeconds, c.retentionSeconds ?? undefined].filter((x): x is number => typeof x === 'number')
    const expiresAt = limits.length ? now + Math.min(...limits) * 1000 : undefined
    const msg: ChatMessage = {
      id, conversationId, sender: this.state.me, outgoing: true, sentAt: now, text, attachments,
      status: this.state.connection === 'online' ? 'sending' : 'queued', readBy: [], expiresAt,
    }
    this.putMessage(msg)
    if (this.state.connection !== 'online') return
    void this.sendGate.pass().then(() => this.acknowledge(id))
  }

  async retry(messageId: string): Promise<void> {
    this.record('retry', messageId)
    this.failIfAsked()
    this.patchMessage(messageId, { status: 'sending', error: undefined })
    void this.sendGate.pass().then(() => this.acknowledge(messageId))
  }

  async markRead(conversationId: string): Promise<void> {
    this.record('markRead', conversationId)
    const c = this.conv(conversationId)
    if (!c || c.unread === 0) return
    this.patchConversation(conversationId, { unread: 0 })
  }

  async deleteMessage(messageId: string): Promise<void> {
    this.record('deleteMessage', messageId)
    await this.actionGate.pass()
    this.failIfAsked()
    this.removeMessage(messageId)
  }

  readonly files = new Map<string, Blob>()
  /** Files whose opening fails with this error (e.g. the sender's homeserver cannot be reached). */
  readonly fileFailures = new Map<string, Error>()

  async openAttachment(messageId: string, fileId: string): Promise<Blob> {
    this.record('openAttachment', messageId, fileId)
    await this.actionGate.pass()
    this.failIfAsked()
    const failure = this.fileFailures.get(fileId)
    if (failure) throw failure
    const b = this.files.get(fileId)
    if (!b) throw new Error('The file is gone from the server.')
    return b
  }

  async createGroup(name: string, members: string[]): Promise<string> {
    this.record('createGroup', name, members)
    await this.actionGate.pass()
    this.failIfAsked()
    for (const m of members) if (!this.directory.has(m)) throw new Error(`There is no account ${m}.`)
    const id = `g:grp${this.nextId++}`
    const all: GroupMember[] = [{ address: this.state.me, role: 'owner' }, ...members.map((address) => ({ address, role: 'member' as const }))]
    this.update((s) => ({ ...s, conversations: [this.newConversation(id, 'group', name || members.join(', '), all), ...s.conversations] }))
    return id
  }

  async addMember(conversationId: string, address: string): Promise<void> {
    this.record('addMember', conversationId, address)
    await this.actionGate.pass()
    this.failIfAsked()
    if (!this.directory.has(address)) throw new Error(`There is no account ${address}.`)
    const c = this.conv(conversationId)!
    if (c.members.some((m) => m.address === address)) throw new Error(`${address} is already a member.`)
    this.patchConversation(conversationId, { members: [...c.members, { address, role: 'member' }] })
  }

  async removeMember(conversationId: string, address: string): Promise<void> {
    this.record('removeMember', conversationId, address)
    await this.actionGate.pass()
    this.failIfAsked()
    const c = this.conv(conversationId)!
    this.patchConversation(conversationId, { members: c.members.filter((m) => m.address !== address) })
  }

  async leaveGroup(conversationId: string): Promise<void> {
    this.record('leaveGroup', conversationId)
    await this.actionGate.pass()
    this.failIfAsked()
    this.update((s) => {
      const messages = { ...s.messages }
      delete messages[conversationId]
      return { ...s, conversations: s.conversations.filter((c) => c.id !== conversationId), messages }
    })
  }

  async setRetention(conversationId: string, seconds: number | null): Promise<void> {
    this.record('setRetention', conversationId, seconds)
    await this.actionGate.pass()
    this.failIfAsked()
    this.patchConversation(conversationId, { retentionSeconds: seconds })
  }

  async setDefaultRetention(seconds: number | null): Promise<void> {
    this.record('setDefaultRetention', seconds)
    await this.actionGate.pass()
    this.failIfAsked()
    this.update((s) => ({ ...s, defaultRetentionSeconds: seconds }))
  }

  async safety(address: string): Promise<SafetyInfo> {
    this.record('safety', address)
    await this.actionGate.pass()
    this.failIfAsked()
    const c = this.state.contacts[address]
    if (!c) throw new Error(`No keys known for ${address}.`)
    const digits = hashDigits([this.state.me, address, this.keyEpoch(address)].sort().join('|'), 60)
    return {
      address,
      safetyNumber: digits.match(/.{5}/g)!.join(' '),
      qrPayload: this.qrPayloadOf(address),
      trust: c.trust,
      directory: this.witnessing,
    }
  }

  /** What the contact's phone would show: the payload verifyScanned accepts for them. */
  qrPayloadOf(address: string): string {
    return `privateline-fake:${[this.state.me, address].sort().join('|')}:${this.keyEpoch(address)}`
  }

  async markVerified(address: string): Promise<void> {
    this.record('markVerified', address)
    await this.actionGate.pass()
    this.failIfAsked()
    this.setContact(address, { trust: 'verified', wasVerified: false })
  }

  async verifyScanned(payload: string): Promise<string> {
    this.record('verifyScanned', payload)
    await this.actionGate.pass()
    this.failIfAsked()
    const match = Object.keys(this.state.contacts).find((a) => this.qrPayloadOf(a) === payload)
    if (!match) throw new Error('This code does not match any of your contacts.')
    this.setContact(match, { trust: 'verified', wasVerified: false })
    return match
  }

  async acceptKeyChange(address: string): Promise<void> {
    this.record('acceptKeyChange', address)
    await this.actionGate.pass()
    this.failIfAsked()
    this.setContact(address, { trust: 'unverified', wasVerified: false })
  }

  async changePassword(current: string, next: string): Promise<void> {
    this.record('changePassword', current, next)
    await this.actionGate.pass()
    this.failIfAsked()
    if (current !== this.account.password) throw new Error('The current password is wrong.')
    this.account.password = next
  }

  async resume(password: string): Promise<void> {
    this.record('resume', password)
    await this.actionGate.pass()
    this.failIfAsked()
    if (password !== this.account.password) throw new Error('Wrong username or password.')
    this.update((s) => ({ ...s, sessionEnded: false, connection: 'online' }))
  }

  async logout(): Promise<void> {
    this.record('logout')
    await this.actionGate.pass()
    this.failIfAsked()
    this.loggedOut = true
    this.update((s) => ({ ...s, connection: 'offline' }))
  }

  async logoutEverywhere(): Promise<void> {
    this.record('logoutEverywhere')
    await this.actionGate.pass()
    this.failIfAsked()
    this.loggedOut = true
    this.update((s) => ({ ...s, connection: 'offline' }))
  }

  async deleteAccount(password: string): Promise<void> {
    this.record('deleteAccount', password)
    await this.actionGate.pass()
    this.failIfAsked()
    if (password !== this.account.password) throw new Error('The password is wrong.')
    this.deleted = true
    this.loggedOut = true
  }

  enablePush(): Promise<void> {
    this.record('enablePush')
    // As the engine: the permission is decided before anything is awaited.
    const permission = this.pushPermission
    return (async () => {
      if (permission === 'denied') {
        this.setPush('denied')
        throw new Error('Notifications are blocked for PrivateLine in this browser.')
      }
      if (permission !== 'granted') throw new Error('Notifications were not allowed. Turn the switch on again and choose “Allow”.')
      await this.actionGate.pass()
      this.failIfAsked()
      this.setPush('on')
    })()
  }

  async disablePush(): Promise<void> {
    this.record('disablePush')
    await this.actionGate.pass()
    this.failIfAsked()
    this.setPush('off')
  }

  async newestUnread(): Promise<string | null> {
    this.record('newestUnread')
    await this.syncGate.pass()
    let best: ChatMessage | undefined
    for (const c of this.state.conversations) {
      if (c.unread === 0) continue
      const incoming = (this.state.messages[c.id] ?? (c.lastMessage ? [c.lastMessage] : [])).filter((m) => !m.outgoing)
      for (const m of incoming.slice(-c.unread)) if (!best || m.sentAt > best.sentAt) best = m
    }
    return best?.conversationId ?? null
  }

  // ---- the other side, for tests ----

  /** The notifications state (and background failure) as the engine would show it. */
  setPush(push: PushState, pushError?: string): void {
    this.update((s) => {
      const next: EngineState = { ...s, push }
      if (pushError === undefined) delete next.pushError
      else next.pushError = pushError
      return next
    })
  }

  /** The next Engine call (any method but markRead/loadHistory reads) fails with this message. */
  failNext(message: string): void {
    this.failures.push(message)
  }

  /** The next send is refused for good by the server. */
  failNextSend(message: string): void {
    this.sendFailure = message
  }
  private sendFailure: string | undefined

  receive(conversationId: string, sender: string, text: string, extra: Partial<ChatMessage> = {}): ChatMessage {
    const msg: ChatMessage = {
      id: `m${this.nextId++}`, conversationId, sender, outgoing: false, sentAt: Date.now(), text,
      attachments: [], status: 'delivered', readBy: [], ...extra,
    }
    this.putMessage(msg, true)
    return msg
  }

  /** Puts a file behind an attachment id, as a server would hold it. */
  storeFile(fileId: string, blob: Blob): void {
    this.files.set(fileId, blob)
  }

  deliver(messageId: string): void {
    this.patchMessage(messageId, { status: 'delivered', waitingFor: undefined })
  }

  /** Its recipients' server could not be reached yet (the server's delivery_waiting). */
  waitForServer(messageId: string, server: string): void {
    this.patchMessage(messageId, { status: 'waiting', waitingFor: [server] })
  }

  readBy(messageId: string, address: string): void {
    const m = this.findMessage(messageId)!
    this.patchMessage(messageId, { status: 'read', readBy: [...m.readBy, address] })
  }

  setConnection(connection: EngineState['connection']): void {
    this.update((s) => ({ ...s, connection }))
    if (connection === 'online') {
      for (const list of Object.values(this.state.messages))
        for (const m of list) if (m.status === 'queued') {
          this.patchMessage(m.id, { status: 'sending' })
          void this.sendGate.pass().then(() => this.acknowledge(m.id))
        }
    }
  }

  endSession(): void {
    this.update((s) => ({ ...s, sessionEnded: true, connection: 'offline' }))
  }

  changeKey(address: string): void {
    const c = this.state.contacts[address]
    this.epochs.set(address, this.keyEpoch(address) + 1)
    this.setContact(address, { trust: 'changed', wasVerified: c?.trust === 'verified' || !!c?.wasVerified })
  }

  removeMessageNow(messageId: string): void {
    this.removeMessage(messageId)
  }

  // ---- internals ----

  private epochs = new Map<string, number>()
  private keyEpoch(address: string): number {
    return this.epochs.get(address) ?? 0
  }

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args })
  }

  private failIfAsked(): void {
    const f = this.failures.shift()
    if (f !== undefined) throw new Error(f)
  }

  private update(f: (s: EngineState) => EngineState): void {
    this.state = f(this.state)
    for (const l of [...this.listeners]) l()
  }

  private conv(id: string): Conversation | undefined {
    return this.state.conversations.find((c) => c.id === id)
  }

  private newConversation(id: string, kind: 'direct' | 'group', title: string, members: GroupMember[]): Conversation {
    return {
      id, kind, title, peer: kind === 'direct' ? title : undefined, members,
      myRole: kind === 'group' ? 'owner' : undefined, unread: 0,
      retentionSeconds: this.state.defaultRetentionSeconds, updatedAt: Date.now(),
    }
  }

  private setContact(address: string, patch: Partial<Contact>): void {
    this.update((s) => ({
      ...s,
      contacts: { ...s.contacts, [address]: { ...(s.contacts[address] ?? { address, trust: 'unverified', wasVerified: false }), ...patch } },
    }))
  }

  private patchConversation(id: string, patch: Partial<Conversation>): void {
    this.update((s) => ({ ...s, conversations: s.conversations.map((c) => (c.id === id ? { ...c, ...patch } : c)) }))
  }

  private findMessage(id: string): ChatMessage | undefined {
    for (const list of Object.values(this.state.messages)) {
      const m = list.find((x) => x.id === id)
      if (m) return m
    }
    return undefined
  }

  private putMessage(msg: ChatMessage, incoming = false): void {
    this.update((s) => {
      const list = [...(s.messages[msg.conversationId] ?? []), msg]
      const conversations = s.conversations
        .map((c) => (c.id === msg.conversationId
          ? { ...c, lastMessage: msg, updatedAt: msg.sentAt, unread: c.unread + (incoming ? 1 : 0) }
          : c))
        .sort((a, b) => b.updatedAt - a.updatedAt)
      return { ...s, conversations, messages: { ...s.messages, [msg.conversationId]: list } }
    })
    if (msg.expiresAt !== undefined) {
      const t = setTimeout(() => this.removeMessage(msg.id), Math.max(0, msg.expiresAt - Date.now()))
      this.timers.set(msg.id, t)
    }
  }

  private patchMessage(id: string, patch: Partial<ChatMessage>): void {
    this.update((s) => {
      const messages = { ...s.messages }
      let changed: ChatMessage | undefined
      for (const [cid, list] of Object.entries(messages)) {
        if (list.some((m) => m.id === id)) {
          messages[cid] = list.map((m) => (m.id === id ? (changed = { ...m, ...patch }) : m))
        }
      }
      const conversations = s.conversations.map((c) => (changed && c.lastMessage?.id === id ? { ...c, lastMessage: changed } : c))
      return { ...s, messages, conversations }
    })
  }

  private removeMessage(id: string): void {
    clearTimeout(this.timers.get(id))
    this.timers.delete(id)
    this.update((s) => {
      const messages: Record<string, ChatMessage[]> = {}
      for (const [cid, list] of Object.entries(s.messages)) messages[cid] = list.filter((m) => m.id !== id)
      const conversations = s.conversations.map((c) =>
        c.lastMessage?.id === id ? { ...c, lastMessage: messages[c.id]?.at(-1) } : c)
      return { ...s, messages, conversations }
    })
  }

  private acknowledge(id: string): void {
    if (this.sendFailure !== undefined) {
      const error = this.sendFailure
      this.sendFailure = undefined
      this.patchMessage(id, { status: 'failed', error })
      return
    }
    if (this.findMessage(id)) this.patchMessage(id, { status: 'sent' })
  }

  /** Stops the expiry timers (test teardown). */
  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}

export interface FakeAuthOptions {
  serverName?: string
  accounts?: Account[]
  /** the engine restore() gives back (a stored session), if any */
  stored?: FakeEngine | null
  /** the state a new or logged-in engine starts from */
  initialState?: (address: string) => Partial<EngineState>
  /** addresses the directory knows, besides the accounts */
  directory?: string[]
}

export class FakeAuth implements Auth {
  readonly serverNameValue: string
  readonly accounts = new Map<string, Account>()
  /** held between progress steps, to see them */
  readonly progressGate = new Gate()
  /** the engines handed out, newest last */
  readonly engines: FakeEngine[] = []
  stored: FakeEngine | null

  constructor(private opts: FakeAuthOptions = {}) {
    this.serverNameValue = opts.serverName ?? 'example.org'
    for (const a of opts.accounts ?? []) this.accounts.set(a.username, { ...a })
    this.stored = opts.stored ?? null
  }

  async serverName(): Promise<string> {
    return this.serverNameValue
  }

  async restore(): Promise<Engine | null> {
    return this.stored
  }

  async register(username: string, password: string, onProgress?: (p: Progress) => void): Promise<Engine> {
    const u = username.trim().toLowerCase()
    if (!/^[a-z0-9._-]{1,64}$/.test(u)) throw new Error('A username uses letters, digits, dot, dash and underscore.')
    if (this.accounts.has(u)) throw new Error('That username is taken.')
    for (const step of ['deriving', 'generating', 'registering'] as Progress[]) {
      onProgress?.(step)
      await this.progressGate.pass()
    }
    const account = { username: u, password }
    this.accounts.set(u, account)
    return this.engineFor(account)
  }

  async login(username: string, password: string, onProgress?: (p: Progress) => void): Promise<Engine> {
    const u = username.trim().toLowerCase()
    onProgress?.('deriving')
    await this.progressGate.pass()
    const account = this.accounts.get(u)
    if (!account || account.password !== password) throw new Error('Wrong username or password.')
    for (const step of ['logging_in', 'unwrapping', 'loading'] as Progress[]) {
      onProgress?.(step)
      await this.progressGate.pass()
    }
    return this.engineFor(account)
  }

  private engineFor(account: Account): FakeEngine {
    const address = `${account.username}@${this.serverNameValue}`
    const e = new FakeEngine(account, address, this.opts.initialState?.(address) ?? {})
    for (const d of this.opts.directory ?? []) e.directory.add(d)
    for (const a of this.accounts.keys()) e.directory.add(`${a}@${this.serverNameValue}`)
    this.engines.push(e)
    return e
  }
}
