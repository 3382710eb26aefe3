// The app's entry to the engine: createAuth() → restore / register / login → Engine.
import { ApiClient, type EpochStore, type Locks, localStorageEpoch } from '../api/client'
import { type Account, login as apiLogin, register as apiRegister } from '../api/account'
import { fromB64, toB64 } from '../crypto/bytes'
import { checkHeadProgress, parseConsistency, parseTreeHead, verifyTreeHead } from '../crypto/directory'
import { E2EEError } from '../crypto/errors'
import { Fields } from '../crypto/fields'
import { acceptServerKey, parseKeyChanges, withEarlier } from '../crypto/keychange'
import type { EngineImpl } from './engine'
import { EngineError, asHuman } from './errors'
import type { PushEnv } from './push'
import { AccountStore, DeviceStore } from './store'
import type { Auth, Engine, Progress } from './types'


export type { Auth, Engine } from './types'
export { EngineError } from './errors'

export interface AuthOptions {
  /** '' (same origin) by default */
  baseUrl?: string
  fetch?: typeof globalThis.fetch
  WebSocket?: typeof WebSocket
  /** the device database's name (and prefix of the accounts' databases); 'privateline' by default */
  namespace?: string
  /** reads the pl_csrf cookie after a reload; document.cookie by default */
  csrfCookie?: () => string | undefined
  locks?: Locks | null
  epoch?: EpochStore
  minBackoffMs?: number
  maxBackoffMs?: number
  /** the browser's Web Push (service worker, PushManager, Notification); the browser's own when undefined, none when null */
  push?: PushEnv | null
}

/** The engine as created by Auth: also closable (tests, page unload). */
export type ClosableEngine = Engine & { close(): void }

/** Auth whose engines can also be closed. */
export interface EngineAuth extends Auth {
  restore(): Promise<ClosableEngine | null>
  register(username: string, password: string, onProgress?: (p: Progress) => void): Promise<ClosableEngine>
  login(username: string, password: string, onProgress?: (p: Progress) => void): Promise<ClosableEngine>
}

// The engine proper (engine.ts with the message, group, attachment,
// pinned-keys and safety-number code) is a chunk of its own: the sign-in
// page needs only the KDF, the account keys and the API client, so the
// engine loads while the password is derived, or at once for a stored
// session. One promise per page; a failed load is tried again next time.
let engineModule: Promise<typeof import('./engine')> | undefined
function loadEngine(): Promise<typeof import('./engine')> {
  engineModule ??= import('./engine').catch((e: unknown) => {
    engineModule = undefined
    const err = new EngineError('PrivateLine could not load all of its code. Check your connection and try again.', 'network')
    ;(err as Error & { cause?: unknown }).cause = e
    throw err
  })
  return engineModule
}

/** Starts loading the engine's code (no-op once loaded); sign-in works without calling it, only sooner with it. */
export function preloadEngine(): void {
  loadEngine().catch(() => undefined)
}

export function createAuth(o: AuthOptions = {}): EngineAuth {
  const ns = o.namespace ?? 'privateline'
  const baseUrl = o.baseUrl ?? ''
  let server: string | undefined
  let device: DeviceStore | undefined
  const dev = async () => (device ??= await DeviceStore.open(ns))

  function newApi(onEnded: () => void): ApiClient {
    const hasLS = typeof (globalThis as { localStorage?: unknown }).localStorage !== 'undefined'
    return new ApiClient({
      baseUrl, fetch: o.fetch, mode: 'cookie', csrfCookie: o.csrfCookie, onSessionEnded: onEnded,
      ...(o.locks !== undefined ? { locks: o.locks } : {}),
      ...(o.epoch ? { epoch: o.epoch } : hasLS ? { epoch: localStorageEpoch() } : {}),
    })
  }

  async function serverName(): Promise<string> {
    if (server) return server
    const api = newApi(() => undefined)
    try {
      const a = await api.get<{ server_key: string; tree_head: unknown; key_changes?: unknown }>('/api/keys/head', { auth: false })
      const head = parseTreeHead(a.tree_head as never)
      const key = fromB64(a.server_key)
      if (!key || key.length !== 32) throw new E2EEError('malformed', 'server_key')
      const d = await dev()
      const pin = await d.server(head.server)
      // The pinned key, or a chain of key-change statements from it (the
      // server rotated its key, spec/e2ee.md §6.4 step 2); re-pinned below.
      const path = await acceptServerKey(head.server, pin ? fromB64(pin.serverKey)! : undefined, key, parseKeyChanges(new Fields(a as never)))
      await verifyTreeHead(head, key)
      const state = { serverKey: key, lastHead: pin?.head ? parseTreeHead(pin.head as never) : undefined }
      await checkHeadProgress(head, state, async (from, to) =>
        parseConsistency(JSON.stringify(await api.get<unknown>(`/api/keys/consistency?from=${from}&to=${to}`, { auth: false }))),
      )
      const earlier = withEarlier(pin?.earlier?.map((k) => fromB64(k)!), path)
      await d.setServer(head.server, {
        ...(earlier.length > 0 ? { earlier: earlier.map(toB64) } : {}),
        serverKey: toB64(key),
        head: { root_hash: toB64(head.rootHash), server: head.server, signature: toB64(head.signature), timestamp: head.timestamp, tree_size: head.treeSize },
      })
      server = head.server
      return server
    } catch (e) {
      throw asHuman(e)
    }
  }

  async function open(api: ApiClient, holder: { engine?: EngineImpl }, store: AccountStore, sessionEnded = false): Promise<EngineImpl> {
    const [d, { EngineImpl }] = await Promise.all([dev(), loadEngine()])
    const address = store.account.address
    const e = await EngineImpl.start(
      {
        api, store, device: d, server: address.slice(address.lastIndexOf('@') + 1), baseUrl, WebSocket: o.WebSocket,
        minBackoffMs: o.minBackoffMs, maxBackoffMs: o.maxBackoffMs,
        ...(o.push !== undefined ? { push: o.push } : {}),
      },
      { sessionEnded },
    )
    holder.engine = e
    await d.setCurrent(address)
    return e
  }

  async function fromAccount(api: ApiClient, holder: { engine?: EngineImpl }, acc: Account, onProgress?: (p: Progress) => void): Promise<EngineImpl> {
    onProgress?.('loading')
    const store = await AccountStore.save(ns, {
      address: acc.address, username: acc.username,
      identity: acc.keys.identity.key, identityPublic: acc.keys.identityPublic,
      encryption: acc.keys.encryption.key, spki: acc.keys.spki, keyId: acc.keys.keyId,
      kek: acc.kek, bundle: new TextDecoder().decode(acc.bundle.json),
      kdf: acc.params.kdf, iterations: acc.params.iterations, salt: new Uint8Array(acc.params.salt),
      nonce: acc.nonce, encryptedPrivateKey: acc.encryptedPrivateKey,
    })
    return open(api, holder, store)
  }

  return {
    serverName,

    async restore() {
      const d = await dev()
      const address = await d.current()
      if (!address) return null
      preloadEngine()
      const store = await AccountStore.open(ns, address)
      if (!store) {
        await d.setCurrent(undefined)
        return null
      }
      const holder: { engine?: EngineImpl } = {}
      const api = newApi(() => holder.engine?.sessionEndedByServer())
      return open(api, holder, store, !api.hasSession)
    },

    async register(username, password, onProgress) {
      preloadEngine()
      const name = await serverName()
      const holder: { engine?: EngineImpl } = {}
      const api = newApi(() => holder.engine?.sessionEndedByServer())
      try {
        const reg = await apiRegister(api, { username, password, serverName: name, onProgress })
        const acc = await reg.login()
        return await fromAccount(api, holder, acc, onProgress)
      } catch (e) {
        throw asHuman(e)
      }
    },

    async login(username, password, onProgress) {
      preloadEngine()
      await serverName()
      const holder: { engine?: EngineImpl } = {}
      const api = newApi(() => holder.engine?.sessionEndedByServer())
      try {
        const acc = await apiLogin(api, username, password, onProgress)
        return await fromAccount(api, holder, acc, onProgress)
      } catch (e) {
        if (e instanceof EngineError) throw e
        throw asHuman(e)
      }
    },
  }
}
