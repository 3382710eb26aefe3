// Key directory answers (§6.4): leaves, entries, tree heads, lookups.
import { E2EEError } from './errors'
import { type Bytes, constantTimeEqual, equal, fromB64, utf8 } from './bytes'
import { type JSONObject, type JSONValue, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, MAX_SAFE } from './fields'
import { type KeyBundle, parseKeyBundle } from './bundle'
import { LABEL, prefixed } from './labels'
import { leafHash, verifyConsistency, verifyInclusion } from './merkle'
import { ed25519Verify, hmacSha256, sha256 } from './primitives'
import { toB64 } from './bytes'
import { type ServerKeyChange, acceptServerKey, parseKeyChanges, withEarlier } from './keychange'

export const MAX_PROOF = 128

export interface Leaf {
  commitment: Bytes
  index: number
  kind: 'key' | 'delete'
  server: string
  timestamp: number
}

export function leafValue(l: Leaf): JSONObject {
  return obj([
    ['commitment', toB64(l.commitment)],
    ['index', l.index],
    ['kind', l.kind],
    ['server', l.server],
    ['timestamp', l.timestamp],
  ])
}

export function leafBytes(l: Leaf): Bytes {
  return encodeBytes(leafValue(l))
}

export function hashLeaf(l: Leaf): Promise<Bytes> {
  return leafHash(leafBytes(l))
}

export function keyCommitment(salt: Uint8Array, bundleJSON: Uint8Array): Promise<Bytes> {
  return hmacSha256(salt, prefixed(LABEL.directoryKey, bundleJSON))
}

export async function deleteCommitment(salt: Uint8Array, address: string, lastBundleJSON: Uint8Array): Promise<Bytes> {
  return deleteCommitmentFromDigest(salt, address, await sha256(lastBundleJSON))
}

export function deleteCommitmentFromDigest(salt: Uint8Array, address: string, lastBundleSha256: Uint8Array): Promise<Bytes> {
  return hmacSha256(salt, prefixed(LABEL.directoryDelete, utf8(address), new Uint8Array([0]), lastBundleSha256))
}

export function entrySigned(l: Leaf): Bytes {
  return prefixed(LABEL.directoryEntry, leafBytes(l))
}

export interface TreeHead {
  rootHash: Bytes
  server: string
  signature: Bytes
  timestamp: number
  treeSize: number
}

export function treeHeadSigned(h: TreeHead): Bytes {
  return prefixed(
    LABEL.treeHead,
    encodeBytes(obj([['root_hash', toB64(h.rootHash)], ['server', h.server], ['timestamp', h.timestamp], ['tree_size', h.treeSize]])),
  )
}

function malformed(what: string, err: string | null): void {
  if (err !== null) throw new E2EEError('malformed', `${what}: ${err}`)
}

function parseJSON(data: Uint8Array | string, what: string): JSONValue {
  try {
    return parseBytes(typeof data === 'string' ? utf8(data) : data)
  } catch (e) {
    throw new E2EEError('malformed', `${what}: ${(e as Error).message}`)
  }
}

export function parseLeaf(v: JSONValue): Leaf {
  const f = new Fields(v)
  const l = {
    commitment: f.bytes('commitment', true, 32, 32),
    index: f.int('index', true, 0, MAX_SAFE),
    kind: f.str('kind'),
    server: f.str('server'),
    timestamp: f.int('timestamp', true, 0, MAX_SAFE),
  }
  malformed('leaf', f.done(false))
  if (l.kind !== 'key' && l.kind !== 'delete') throw new E2EEError('malformed', 'leaf: unknown kind')
  return l as Leaf
}

export function parseTreeHead(v: JSONValue): TreeHead {
  const f = new Fields(v)
  const h = {
    rootHash: f.bytes('root_hash', true, 32, 32),
    server: f.str('server'),
    signature: f.bytes('signature', true, 64, 64),
    timestamp: f.int('timestamp', true, 0, MAX_SAFE),
    treeSize: f.int('tree_size', true, 0, MAX_SAFE),
  }
  malformed('tree head', f.done(false))
  return h
}

export async function verifyTreeHead(h: TreeHead, serverKey: Uint8Array): Promise<void> {
  if (!(await ed25519Verify(serverKey, treeHeadSigned(h), h.signature))) throw new E2EEError('bad_signature', 'tree head signature is invalid')
}

function hashes(f: Fields, name: string): Bytes[] {
  const a = f.array(name)
  if (f.err !== null) return []
  if (a.length > MAX_PROOF) throw new E2EEError('malformed', `${name}: at most ${MAX_PROOF} hashes`)
  return a.map((s) => {
    const b = typeof s === 'string' ? fromB64(s) : null
    if (b === null || b.length !== 32) throw new E2EEError('malformed', `${name}: an array of base64 SHA-256 hashes`)
    return b
  })
}

export interface Entry {
  leaf: Leaf
  salt: Bytes
  signature: Bytes
}

export interface Lookup {
  address: string
  bundle: KeyBundle
  entry: Entry
  inclusionProof: Bytes[]
  serverKey: Bytes
  head: TreeHead
  /** Asked with ?since=: the tree size the proof starts from, and the proof to `head`. */
  since?: number
  consistency?: Bytes[]
  /** "key_changes": statements from the server's earlier keys to serverKey (after a rotation). */
  keyChanges: ServerKeyChange[]
}

/**
 * Parses a GET /api/public_key answer; the bundle is verified (§6.4 step 1).
 * `since` is the tree size the client asked from (0: none); such an answer
 * must carry its consistency proof.
 */
export async function parseLookup(data: Uint8Array | string, since = 0): Promise<Lookup> {
  const f = new Fields(parseJSON(data, 'lookup'))
  const address = f.str('address')
  const bv = f.object('key_bundle')
  const ev = f.object('entry')
  const proof = hashes(f, 'inclusion_proof')
  const serverKey = f.bytes('server_key', true, 32, 32)
  const hv = f.object('tree_head')
  const consistency = since > 0 ? hashes(f, 'consistency') : undefined
  const keyChanges = parseKeyChanges(f)
  malformed('lookup', f.done(false))
  const bundle = await parseKeyBundle(encodeBytes(bv))
  const ef = new Fields(ev)
  const lv = ef.object('leaf')
  const salt = ef.bytes('salt', true, 32, 32)
  const signature = ef.bytes('signature', true, 64, 64)
  malformed('entry', ef.done(false))
  const l: Lookup = { address, bundle, entry: { leaf: parseLeaf(lv), salt, signature }, inclusionProof: proof, serverKey, head: parseTreeHead(hv), keyChanges }
  if (since > 0) Object.assign(l, { since, consistency })
  return l
}

/** §6.4 step 5: the entry commits to the bundle and is signed by the server. */
export async function verifyEntry(serverKey: Uint8Array, server: string, bundle: KeyBundle, e: Entry): Promise<void> {
  if (e.leaf.server !== server || e.leaf.kind !== 'key' || !constantTimeEqual(e.leaf.commitment, await keyCommitment(e.salt, bundle.json)))
    throw new E2EEError('bad_proof', 'the entry does not commit to this bundle on this server')
  if (!(await ed25519Verify(serverKey, entrySigned(e.leaf), e.signature))) throw new E2EEError('bad_signature', 'entry signature is invalid')
}

/** §6.4 steps 3–6 against a given server key (step 2, pinning, is DirectoryState's). */
export async function verifyLookup(l: Lookup, serverKey: Uint8Array, server: string, address: string): Promise<void> {
  if (l.head.server !== server) throw new E2EEError('bad_proof', `the tree head is from ${l.head.server}, not ${server}`)
  await verifyTreeHead(l.head, serverKey)
  if (l.address !== address || l.bundle.address !== address) throw new E2EEError('bad_proof', 'the directory answered for another address')
  await verifyEntry(serverKey, server, l.bundle, l.entry)
  if (!(await verifyInclusion(await hashLeaf(l.entry.leaf), l.entry.leaf.index, l.head.treeSize, l.inclusionProof, l.head.rootHash)))
    throw new E2EEError('bad_proof', 'the entry is not in the log the tree head describes')
}

export interface Consistency {
  from: number
  to: number
  proof: Bytes[]
}

export function parseConsistency(data: Uint8Array | string): Consistency {
  const f = new Fields(parseJSON(data, 'consistency'))
  const c = { from: f.int('from', true, 1, MAX_SAFE), proof: hashes(f, 'proof'), to: f.int('to', true, 1, MAX_SAFE) }
  malformed('consistency', f.done(false))
  return c
}

/** Per-server state a client keeps: the pinned server key and the last verified head. */
export interface ServerState {
  serverKey?: Bytes
  lastHead?: TreeHead
  /** the keys this client followed to serverKey (acceptServerKey), oldest first */
  earlier?: Bytes[]
}

/**
 * The whole of §6.4's verification of a lookup, steps 2–7, updating `state`
 * only when every check passed. `fetchConsistency(from, to)` fetches a proof.
 */
export async function acceptLookup(
  l: Lookup, server: string, address: string, state: ServerState,
  fetchConsistency: (from: number, to: number) => Promise<Consistency>,
): Promise<KeyBundle> {
  // Step 2: the pinned key, or a chain of key-change statements from it
  // (the server rotated its key); the new key is pinned below, once
  // everything else verified under it.
  const path = await acceptServerKey(server, state.serverKey, l.serverKey, l.keyChanges)
  await verifyLookup(l, l.serverKey, server, address)
  const given = l.since !== undefined && l.since === state.lastHead?.treeSize ? l : undefined
  await checkHeadProgress(l.head, state, (from, to) =>
    given && from === given.since && to === l.head.treeSize ? Promise.resolve({ from, to, proof: given.consistency! }) : fetchConsistency(from, to),
  )
  state.serverKey = l.serverKey
  state.lastHead = l.head
  if (path.length > 0) state.earlier = withEarlier(state.earlier, path)
  return l.bundle
}

/** Step 7: rollback, fork, or a verified extension of the last head. */
export async function checkHeadProgress(head: TreeHead, state: ServerState, fetchConsistency: (from: number, to: number) => Promise<Consistency>): Promise<void> {
  const last = state.lastHead
  if (last === undefined) return
  if (head.treeSize < last.treeSize) throw new E2EEError('log_rollback', 'the tree head is smaller than the last one seen')
  if (head.treeSize === last.treeSize) {
    if (!equal(head.rootHash, last.rootHash)) throw new E2EEError('log_fork', 'same tree size, another root')
    return
  }
  if (last.treeSize === 0) return
  const c = await fetchConsistency(last.treeSize, head.treeSize)
  if (c.from !== last.treeSize || c.to !== head.treeSize || !(await verifyConsistency(c.from, c.to, last.rootHash, head.rootHash, c.proof)))
    throw new E2EEError('log_fork', 'the tree head is not an extension of the last one seen')
}

