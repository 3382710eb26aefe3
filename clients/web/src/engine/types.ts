// The contract between the screens (src/ui) and the client engine
// (src/engine): everything the app shows comes from an EngineState
// snapshot, everything it does goes through an Engine method. The engine
// does the protocol (spec/e2ee.md) and the storage; the screens never touch
// a key, an envelope or IndexedDB.
//
// Conversation ids: "d:" + the peer's address for a direct conversation,
// "g:" + the group id for a group. Times are milliseconds since the epoch.

export type ConnectionState = 'online' | 'connecting' | 'offline'

/**
 * Notifications while PrivateLine is closed (Web Push through the app's
 * service worker; they say only "New message" and the unread count, never
 * a sender or text). unsupported: this browser (or a development build,
 * which has no service worker) cannot; unavailable: the homeserver does not
 * send Web Push; denied: the user blocked notifications for the site in the
 * browser's settings; off; on: this browser is subscribed and registered
 * with the homeserver for this account.
 */
export type PushState = 'unsupported' | 'unavailable' | 'denied' | 'off' | 'on'

/**
 * What this client knows of a contact's keys (spec/e2ee.md §6.2, §18):
 * unverified: pinned on first use; verified: the user compared safety
 * numbers or scanned the contact's QR code; changed: the directory now
 * serves a key other than the pinned one. Sending to a contact that was
 * verified and whose key changed is refused until the user re-verifies.
 */
export type TrustState = 'unverified' | 'verified' | 'changed'

export interface Contact {
  address: string
  trust: TrustState
  /** true when the contact was verified before their key changed */
  wasVerified: boolean
}

export interface Attachment {
  fileId: string
  name: string
  mime: string
  size: number
}

/**
 * queued: written to the outbox (IndexedDB), waiting for the connection;
 * sending: posted, no answer yet; sent: acknowledged by the homeserver
 * (durable); delivered: in every recipient's homeserver mailbox (for
 * recipients on the user's own server that is the acknowledgement itself;
 * remote ones when their homeserver accepted it); read: every recipient marked it read; failed:
 * refused for good (error says why, retry() tries again); waiting: sent, but
 * the homeserver of some recipients could not be reached on the last attempt
 * (waitingFor names it): our server keeps trying until it is delivered or
 * the delivery timeout fails it.
 */
export type MessageStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'waiting'

export interface ChatMessage {
  id: string
  conversationId: string
  sender: string
  outgoing: boolean
  sentAt: number
  text: string
  attachments: Attachment[]
  status: MessageStatus
  /** addresses that marked it read */
  readBy: string[]
  /** when it disappears (its own timer or the conversation's retention) */
  expiresAt?: number
  /** a human sentence: why it could not be sent, or could not be opened */
  error?: string
  /** other servers it waits for (status 'waiting'): they could not be reached yet */
  waitingFor?: string[]
}

export type Role = 'owner' | 'admin' | 'member'

export interface GroupMember {
  address: string
  role: Role
}

export interface Conversation {
  id: string
  kind: 'direct' | 'group'
  /** the peer's address, or the group's name (its members when unnamed) */
  title: string
  /** direct: the peer's address */
  peer?: string
  /** group: members with roles (empty for direct) */
  members: GroupMember[]
  /** group: the user's own role */
  myRole?: Role
  lastMessage?: ChatMessage
  unread: number
  /** seconds after which messages sent from now on disappear; null: never */
  retentionSeconds: number | null
  /** activity time used to order the sidebar */
  updatedAt: number
}

export interface EngineState {
  /** the signed-in address, e.g. alice@example.org */
  me: string
  connection: ConnectionState
  /** newest activity first */
  conversations: Conversation[]
  /** by conversation id, oldest first; only conversations loaded so far */
  messages: Record<string, ChatMessage[]>
  /** by address */
  contacts: Record<string, Contact>
  /** the account's default retention for new conversations; null: never */
  defaultRetentionSeconds: number | null
  /**
   * true when the session ended on the server (expired refresh, logout
   * elsewhere, revoked): the app asks for the password again without
   * dropping what is on screen; login() on the same account resumes.
   */
  sessionEnded: boolean
  /** notifications while the app is closed on this browser */
  push: PushState
  /**
   * a human sentence: why keeping notifications on failed in the
   * background (the registration renewed on every start); cleared by the
   * next success, enablePush() or disablePush()
   */
  pushError?: string
}

export interface SendOptions {
  files?: File[]
  /** this message's own timer in seconds (shorter of it and the conversation's retention wins) */
  expiresInSeconds?: number
}

export interface SafetyInfo {
  address: string
  /** 60 digits in groups of five, the same on both sides */
  safetyNumber: string
  /** the text to show as a QR code (spec/e2ee.md §10.2) */
  qrPayload: string
  trust: TrustState
  /** what other servers say about the key directories (absent: not known) */
  directory?: DirectoryWitnessing
}

/**
 * Tree-head witnessing (spec/e2ee.md §6.4 "Witnesses"): other homeservers
 * co-sign the trees of the homeserver's key directory after checking that
 * each extends what they saw before, and keep evidence when a directory
 * shows two histories.
 */
export interface DirectoryWitnessing {
  /**
   * other servers whose co-signature of the homeserver's current directory
   * head verified under the key this account pinned for their own
   * directory, sorted
   */
  vouchedBy: string[]
  /**
   * servers whose directory the homeserver caught forking; verified: checked
   * under the key pinned for them, or an earlier key of theirs this app
   * followed or their pinned key names as their own; reason: why the
   * evidence checks out, a sentence to show after "The evidence checks out:"
   */
  forks: { server: string; verified: boolean; reason?: string }[]
  /** a human sentence when the homeserver could not be asked */
  error?: string
}

export type Progress = 'deriving' | 'generating' | 'registering' | 'logging_in' | 'unwrapping' | 'loading'

export interface Engine {
  /** useSyncExternalStore: the listener runs after every state change */
  subscribe(listener: () => void): () => void
  /** an immutable snapshot; the same object until something changes */
  getState(): EngineState

  /** Looks the address up (verified through the key directory) and opens the conversation; returns its id. */
  openDirect(address: string): Promise<string>
  /** Loads (from the cache, then the server) the history of a conversation. */
  loadHistory(conversationId: string): Promise<void>
  /** Resolves once the message is in the outbox; it goes as soon as the connection allows. */
  send(conversationId: string, text: string, opts?: SendOptions): Promise<void>
  retry(messageId: string): Promise<void>
  /** Marks every unread message of the conversation read. */
  markRead(conversationId: string): Promise<void>
  deleteMessage(messageId: string): Promise<void>
  /** Downloads, checks and decrypts an attachment. */
  openAttachment(messageId: string, fileId: string): Promise<Blob>

  createGroup(name: string, members: string[]): Promise<string>
  addMember(conversationId: string, address: string): Promise<void>
  removeMember(conversationId: string, address: string): Promise<void>
  leaveGroup(conversationId: string): Promise<void>

  setRetention(conversationId: string, seconds: number | null): Promise<void>
  setDefaultRetention(seconds: number | null): Promise<void>

  safety(address: string): Promise<SafetyInfo>
  /** The user compared the numbers and confirms they match. */
  markVerified(address: string): Promise<void>
  /** Checks a scanned code against every contact; marks the match verified and returns its address. */
  verifyScanned(payload: string): Promise<string>
  /** Accepts a contact's new key (pins it, unverified). */
  acceptKeyChange(address: string): Promise<void>

  changePassword(current: string, next: string): Promise<void>
  /** Signs in again after sessionEnded, keeping the state on screen. */
  resume(password: string): Promise<void>
  logout(): Promise<void>
  logoutEverywhere(): Promise<void>
  deleteAccount(password: string): Promise<void>

  /**
   * Turns notifications on for this browser: asks for the permission, then
   * subscribes through the service worker and registers the subscription
   * with the homeserver. Call it straight from the click (before any await)
   * so that the browser sees the user's gesture. Rejects with a sentence.
   */
  enablePush(): Promise<void>
  /** Unsubscribes this browser and unregisters it from the homeserver. */
  disablePush(): Promise<void>
  /**
   * For a click on a notification: waits until the engine is in step with
   * the server (connected and caught up; when that takes more than a few
   * seconds, what is known so far) and returns the id of the conversation
   * holding the newest unread message, or null when nothing is unread.
   */
  newestUnread(): Promise<string | null>
}

/** How the app starts: restore a stored session, or sign in or up. */
export interface Auth {
  /** The homeserver's name, read from its signed key-directory head. */
  serverName(): Promise<string>
  /** A stored account (keys in IndexedDB): works offline, from the cache. */
  restore(): Promise<Engine | null>
  register(username: string, password: string, onProgress?: (p: Progress) => void): Promise<Engine>
  login(username: string, password: string, onProgress?: (p: Progress) => void): Promise<Engine>
}
