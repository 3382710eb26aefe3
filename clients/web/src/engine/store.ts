// IndexedDB storage of the engine (through `idb`).
//
// Two kinds of database:
//  - `<ns>` (one per device/origin): which account is signed in ("current")
//    and, per server name, the pinned directory key and last verified tree
//    head (public data: what serverName() checks before any account exists).
//  - `<ns>:<address>` (one per account): the "account" record with the
//    account's keys as non-extractable CryptoKeys (Ed25519 signing,
//    RSA-OAEP decryption, the password's kek and a locally generated AES-GCM
//    "local key") plus its public bundle and the server's wrapped keys; and
//    the stores "kv", "conversations", "messages" and "outbox", whose every
//    value is sealed under the local key: record = { k, v: nonce ‖
//    AES-GCM(localKey, nonce, JSON, aad = store ‖ 0x00 ‖ key), x?: expiresAt }.
//    Only the record key (a message id, a conversation id such as
//    "d:bob@example.org" hashed, see below) and an expiry time are in clear.
//
// Conversation ids contain addresses, so their records are keyed by the
// SHA-256 of the id, not the id itself.
import { type IDBPDatabase, deleteDB, openDB } from 'idb'
import { fromUtf8, toHex, utf8 } from '../crypto/bytes'
import { aesGcmOpen, aesGcmSeal, random, sha256, subtle } from '../crypto/primitives'

export type SealedStore = 'kv' | 'conversations' | 'messages' | 'outbox'
const SEALED: SealedStore[] = ['kv', 'conversations', 'messages', 'outbox']

/** The account's keys and key material, as kept on this device. */
export interface AccountRecord {
  address: string
  username: string
  identity: CryptoKey
  identityPublic: Uint8Array
  encryption: CryptoKey
  spki: Uint8Array
  keyId: string
  kek: CryptoKey
  localKey: CryptoKey
  /** the account's key bundle, canonical JSON text */
  bundle: string
  kdf: string
  iterations: number
  salt: Uint8Array
  nonce: Uint8Array
  encryptedPrivateKey: Uint8Array
}

interface SealedRecord {
  k: string
  v: Uint8Array
  x?: number
}

export interface ServerPin {
  serverKey: string
  /** the last verified tree head, as the server's JSON */
  head?: unknown
  /** the keys followed to serverKey through key-change statements, oldest first (b64) */
  earlier?: string[]
}

function idbAvailable(): void {
  if (typeof globalThis.indexedDB === 'undefined') throw new Error('This browser has no IndexedDB: PrivateLine cannot keep your keys here.')
}

/** The device-level database: the current account and the servers' directory pins. */
export class DeviceStore {
  private constructor(private readonly db: IDBPDatabase) {}

  static async open(ns: string): Promise<DeviceStore> {
    idbAvailable()
    const db = await openDB(ns, 1, {
      upgrade(d) {
        d.createObjectStore('device')
      },
    })
    return new DeviceStore(db)
  }

  async current(): Promise<string | undefined> {
    return (await this.db.get('device', 'current')) as string | undefined
  }

  async setCurrent(address: string | undefined): Promise<void> {
    if (address === undefined) await this.db.delete('device', 'current')
    else await this.db.put('device', address, 'current')
  }

  async server(name: string): Promise<ServerPin | undefined> {
    return (await this.db.get('device', 'server:' + name)) as ServerPin | undefined
  }

  async setServer(name: string, pin: ServerPin): Promise<void> {
    await this.db.put('device', pin, 'server:' + name)
  }

  close(): void {
    this.db.close()
  }
}

export function accountDbName(ns: string, address: string): string {
  return `${ns}:${address}`
}

/** One account's database; values of the sealed stores are sealed under the local key. */
export class AccountStore {
  private constructor(
    private readonly db: IDBPDatabase,
    readonly name: string,
    public account: AccountRecord,
  ) {}

  static async exists(ns: string, address: string): Promise<boolean> {
    idbAvailable()
    const dbs = typeof indexedDB.databases === 'function' ? await indexedDB.databases() : undefined
    if (dbs) return dbs.some((d) => d.name === accountDbName(ns, address))
    return true
  }

  static async openDb(ns: string, address: string): Promise<IDBPDatabase> {
    idbAvailable()
    const db = await openDB(accountDbName(ns, address), 1, {
      upgrade(d) {
        d.createObjectStore('account')
        for (const s of SEALED) d.createObjectStore(s, { keyPath: 'k' })
      },
      // Another tab or engine deletes this account (logout): let it.
      blocking() {
        db.close()
      },
    })
    return db
  }

  /** Opens the stored account, or undefined when this device has none for the address. */
  static async open(ns: string, address: string): Promise<AccountStore | undefined> {
    const db = await AccountStore.openDb(ns, address)
    const a = (await db.get('account', 'account')) as AccountRecord | undefined
    if (!a) {
      db.close()
      return undefined
    }
    return new AccountStore(db, accountDbName(ns, address), a)
  }

  /** Creates or updates the account record (a login keeps the local key and the cache). */
  static async save(ns: string, a: Omit<AccountRecord, 'localKey'>): Promise<AccountStore> {
    const db = await AccountStore.openDb(ns, a.address)
    const old = (await db.get('account', 'account')) as AccountRecord | undefined
    const localKey =
      old?.localKey ?? ((await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])) as CryptoKey)
    const rec: AccountRecord = { ...a, localKey }
    await db.put('account', rec, 'account')
    return new AccountStore(db, accountDbName(ns, a.address), rec)
  }

  async updateAccount(patch: Partial<AccountRecord>): Promise<void> {
    this.account = { ...this.account, ...patch }
    await this.db.put('account', this.account, 'account')
  }

  private aad(store: SealedStore, key: string): Uint8Array {
    return utf8(`privateline/web/local/${store}\u0000${key}`)
  }

  private async seal(store: SealedStore, key: string, value: unknown): Promise<Uint8Array> {
    const nonce = random(12)
    const ct = await aesGcmSeal(this.account.localKey, nonce, utf8(JSON.stringify(value)), this.aad(store, key))
    const out = new Uint8Array(12 + ct.length)
    out.set(nonce)
    out.set(ct, 12)
    return out
  }

  private async unseal<T>(store: SealedStore, key: string, v: Uint8Array): Promise<T | undefined> {
    const pt = await aesGcmOpen(this.account.localKey, v.subarray(0, 12), v.subarray(12), this.aad(store, key))
    if (pt === null) return undefined // damaged or not ours: treated as absent
    return JSON.parse(fromUtf8(pt)) as T
  }

  /** Record keys of conversations are hashed: their ids contain addresses. */
  static async hashedKey(id: string): Promise<string> {
    return toHex((await sha256(utf8(id))).subarray(0, 16))
  }

  async put(store: SealedStore, key: string, value: unknown, expiresAt?: number): Promise<void> {
    const rec: SealedRecord = { k: key, v: await this.seal(store, key, value) }
    if (expiresAt !== undefined) rec.x = expiresAt
    await this.db.put(store, rec)
  }

  async get<T>(store: SealedStore, key: string): Promise<T | undefined> {
    const rec = (await this.db.get(store, key)) as SealedRecord | undefined
    return rec ? this.unseal<T>(store, key, rec.v) : undefined
  }

  async all<T>(store: SealedStore): Promise<{ key: string; value: T; expiresAt?: number }[]> {
    const recs = (await this.db.getAll(store)) as SealedRecord[]
    const out: { key: string; value: T; expiresAt?: number }[] = []
    for (const r of recs) {
      const v = await this.unseal<T>(store, r.k, r.v)
      if (v !== undefined) out.push({ key: r.k, value: v, expiresAt: r.x })
    }
    return out
  }

  async delete(store: SealedStore, key: string): Promise<void> {
    await this.db.delete(store, key)
  }

  /** Deletes the records whose expiry time has passed, without opening them. */
  async pruneExpired(store: SealedStore, now: number): Promise<string[]> {
    const recs = (await this.db.getAll(store)) as SealedRecord[]
    const gone = recs.filter((r) => r.x !== undefined && r.x <= now).map((r) => r.k)
    for (const k of gone) await this.db.delete(store, k)
    return gone
  }

  close(): void {
    this.db.close()
  }

  /** Closes and deletes the whole database of this account. */
  async destroy(): Promise<void> {
    this.db.close()
    await deleteDB(this.name)
  }
}
