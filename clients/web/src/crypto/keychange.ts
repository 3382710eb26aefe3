// A homeserver's key-change statements (spec/federation.md §2.2), as a
// client follows them (spec/e2ee.md §6.4 step 2): when a server rotates its
// identity key (homeserver rotate-key), its directory's answers carry
// "key_changes", each statement naming the next key and signed by the one
// before. A client that pinned an earlier key accepts the new one only
// through a valid chain from its pin; anything else is server_key_changed.
import { E2EEError } from './errors'
import { type Bytes, equal, toB64, utf8 } from './bytes'
import { type JSONValue, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, MAX_SAFE } from './fields'
import { prefixed } from './labels'
import { ed25519Verify } from './primitives'

export const LABEL_SERVER_KEY_CHANGE = 'privateline/v1/federation-key-change'
/** At most this many statements in an answer (spec/federation.md §2.1). */
export const MAX_KEY_CHANGES = 16

export interface ServerKeyChange {
  createdAt: number
  newKey: Bytes
  oldKey: Bytes
  server: string
  signature: Bytes
}

/** The label, 0x00 and canonical {created_at, new_key, old_key, server}. */
export function serverKeyChangeSigned(c: ServerKeyChange): Bytes {
  return prefixed(
    LABEL_SERVER_KEY_CHANGE,
    encodeBytes(obj([['created_at', c.createdAt], ['new_key', toB64(c.newKey)], ['old_key', toB64(c.oldKey)], ['server', c.server]])),
  )
}

function parseOne(v: JSONValue): ServerKeyChange {
  const f = new Fields(v)
  const c = {
    createdAt: f.int('created_at', true, 0, MAX_SAFE),
    newKey: f.bytes('new_key', true, 32, 32),
    oldKey: f.bytes('old_key', true, 32, 32),
    server: f.str('server'),
    signature: f.bytes('signature', true, 64, 64),
  }
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `key change: ${err}`)
  return c
}

/**
 * Reads the optional "key_changes" member of a directory answer: absent is
 * none; present, 1 to MAX_KEY_CHANGES statements. Signatures are checked
 * by acceptServerKey.
 */
export function parseKeyChanges(f: Fields): ServerKeyChange[] {
  if (!f.has('key_changes')) return []
  const a = f.array('key_changes', false)
  if (f.err !== null) return []
  if (a.length === 0 || a.length > MAX_KEY_CHANGES) throw new E2EEError('malformed', `key_changes: 1 to ${MAX_KEY_CHANGES} statements`)
  return a.map(parseOne)
}

/**
 * §6.4 step 2. `pinned` is the key this client pinned for `server`
 * (undefined: none yet, `offered` will be pinned); `offered` the answer's
 * server_key; `changes` its key_changes. Accepts the pinned key, or a run
 * of statements for `server` starting at the pinned key, each signed by the
 * key the previous one led to, ending at `offered`. The caller re-pins only
 * after the rest of the answer verified under `offered`, and keeps the keys
 * returned — those the run went through, the pinned one first, `offered`
 * not included; none when the key did not change — as the server's earlier
 * keys (withEarlier), under which fork evidence made before the rotation
 * still verifies.
 */
export async function acceptServerKey(server: string, pinned: Bytes | undefined, offered: Bytes, changes: readonly ServerKeyChange[]): Promise<Bytes[]> {
  if (pinned === undefined || equal(pinned, offered)) return []
  const start = changes.findIndex((c) => equal(c.oldKey, pinned))
  if (start < 0) throw new E2EEError('server_key_changed', `the directory of ${server} answered under another key, and no key-change statement starts at the pinned one`)
  let cur = pinned
  const path: Bytes[] = []
  for (let i = start; i < changes.length; i++) {
    const c = changes[i]!
    if (!equal(c.oldKey, cur) || c.server !== server || equal(c.oldKey, c.newKey) || !(await ed25519Verify(c.oldKey, serverKeyChangeSigned(c), c.signature)))
      throw new E2EEError('server_key_changed', `the directory of ${server} changed its key, but key-change statement ${i} does not verify`)
    path.push(cur)
    cur = c.newKey
    if (equal(cur, offered)) return path
  }
  throw new E2EEError('server_key_changed', `the directory of ${server} changed its key, but its key-change statements do not lead to it`)
}

/**
 * The earlier keys kept after following `path` (acceptServerKey) from a
 * pin whose earlier keys were `earlier`: oldest first, at most
 * MAX_KEY_CHANGES. Only keys this client followed itself belong here: a
 * statement from a key to the current one proves nothing about who held
 * the old key (anyone can sign one from a key of their own).
 */
export function withEarlier(earlier: readonly Bytes[] | undefined, path: readonly Bytes[]): Bytes[] {
  return [...(earlier ?? []), ...path].slice(-MAX_KEY_CHANGES)
}

export const LABEL_SERVER_DOCUMENT = 'privateline/v1/federation-server'

/** A key a server held before its current one, as its current key states. */
export interface EarlierServerKey {
  key: Bytes
  /** created_at of the statement that replaced it (ms): heads it signed later are not the server's */
  replacedAt: number
}

/**
 * The earlier keys a server's current key names as the server's own, from
 * its server document (spec/federation.md §2.1, passed on by the
 * homeserver: GET /api/keys/forks/document), for a client that pinned
 * only the current key (spec/e2ee.md §6.4 "Witnesses"). The document must
 * be `server`'s, signed by `pinned` (its "key"), with a valid chain of
 * statements ending at it: then `pinned` vouches for every key the chain
 * names. A statement signed by an old key proves nothing to a client that
 * trusts only the new one; a document signed by another key (an old one
 * included) is server_key_changed.
 */
export async function earlierKeysFromDocument(data: Uint8Array | string, server: string, pinned: Bytes): Promise<EarlierServerKey[]> {
  const what = `the server document of ${server}`
  let v: JSONValue
  try {
    v = parseBytes(typeof data === 'string' ? utf8(data) : data)
  } catch (e) {
    throw new E2EEError('malformed', `${what}: ${(e as Error).message}`)
  }
  const f = new Fields(v)
  const d = {
    createdAt: f.int('created_at', true, 0, MAX_SAFE),
    federation: f.str('federation'),
    key: f.bytes('key', true, 32, 32),
    server: f.str('server'),
    signature: f.bytes('signature', true, 64, 64),
    v: f.int('v', true, 0, MAX_SAFE),
    changes: parseKeyChanges(f),
  }
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `${what}: ${err}`)
  if (d.v !== 1) throw new E2EEError('malformed', `${what}: version ${d.v}`)
  if (d.server !== server) throw new E2EEError('bad_proof', `${what} names ${d.server}`)
  if (!equal(d.key, pinned)) throw new E2EEError('server_key_changed', `${what} is signed with another key than the one pinned for it`)
  const unsigned = obj(Object.entries(v as Record<string, JSONValue>).filter(([k]) => k !== 'signature'))
  if (!(await ed25519Verify(pinned, prefixed(LABEL_SERVER_DOCUMENT, encodeBytes(unsigned)), d.signature)))
    throw new E2EEError('bad_signature', `${what}: the signature does not verify under the pinned key`)
  for (let i = 0; i < d.changes.length; i++) {
    const c = d.changes[i]!
    if (c.server !== server || equal(c.oldKey, c.newKey) || (i > 0 && !equal(c.oldKey, d.changes[i - 1]!.newKey)) || !(await ed25519Verify(c.oldKey, serverKeyChangeSigned(c), c.signature)))
      throw new E2EEError('bad_proof', `${what}: key-change statement ${i} does not verify or does not follow the previous one`)
  }
  if (d.changes.length > 0 && !equal(d.changes[d.changes.length - 1]!.newKey, pinned))
    throw new E2EEError('bad_proof', `${what}: the last key change does not lead to its key`)
  return d.changes.map((c) => ({ key: c.oldKey, replacedAt: c.createdAt }))
}
