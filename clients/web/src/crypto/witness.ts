// Tree-head witnessing, the client side (spec/e2ee.md §6.4 "Witnesses",
// spec/federation.md §12.6): co-signatures other homeservers made of a
// directory's trees, and fork evidence a homeserver keeps about others.
import { E2EEError } from './errors'
import { type Bytes, equal, fromB64, toB64, utf8 } from './bytes'
import { type JSONValue, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, MAX_SAFE } from './fields'
import { prefixed } from './labels'
import { verifyConsistency } from './merkle'
import { ed25519Verify } from './primitives'
import { MAX_PROOF, type TreeHead, parseTreeHead, treeHeadSigned, verifyTreeHead } from './directory'
import { type EarlierServerKey, type ServerKeyChange, parseKeyChanges } from './keychange'

export const LABEL_WITNESS = 'privateline/v1/federation-witness'

export interface Cosignature {
  witness: string
  witnessKey: Bytes
  witnessedAt: number
  signature: Bytes
  /** the head of the directory the witness co-signed */
  head: TreeHead
}

export interface CosignaturesAnswer {
  serverKey: Bytes
  head: TreeHead
  cosignatures: Cosignature[]
  /** "key_changes" after a rotation of the server's key (keychange.ts). */
  keyChanges: ServerKeyChange[]
}

export type ForkKind = 'same_size' | 'inconsistent'

export interface ForkEvidence {
  kind: ForkKind
  server: string
  witness: string
  detectedAt: number
  first: TreeHead
  second: TreeHead
  consistency: Bytes[]
}

/** What a witness signs: the label, 0x00, canonical {root_hash, server, tree_size, witness, witnessed_at}. */
export function cosignatureSigned(head: TreeHead, witness: string, witnessedAt: number): Bytes {
  return prefixed(
    LABEL_WITNESS,
    encodeBytes(obj([['root_hash', toB64(head.rootHash)], ['server', head.server], ['tree_size', head.treeSize], ['witness', witness], ['witnessed_at', witnessedAt]])),
  )
}

/** The co-signature is of the tree of `head` (same server, size and root). */
export function covers(c: Cosignature, head: TreeHead): boolean {
  return c.head.server === head.server && c.head.treeSize === head.treeSize && equal(c.head.rootHash, head.rootHash)
}

export async function verifyCosignature(c: Cosignature, witnessKey: Uint8Array): Promise<void> {
  if (!(await ed25519Verify(witnessKey, cosignatureSigned(c.head, c.witness, c.witnessedAt), c.signature)))
    throw new E2EEError('bad_signature', `the co-signature of ${c.witness} does not verify`)
}

function parseJSON(data: Uint8Array | string, what: string): JSONValue {
  try {
    return parseBytes(typeof data === 'string' ? utf8(data) : data)
  } catch (e) {
    throw new E2EEError('malformed', `${what}: ${(e as Error).message}`)
  }
}

function done(f: Fields, what: string): void {
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `${what}: ${err}`)
}

function parseCosignature(v: JSONValue): Cosignature {
  const f = new Fields(v)
  const c = {
    signature: f.bytes('signature', true, 64, 64),
    head: f.object('tree_head'),
    witness: f.str('witness'),
    witnessKey: f.bytes('witness_key', true, 32, 32),
    witnessedAt: f.int('witnessed_at', true, 0, MAX_SAFE),
  }
  done(f, 'co-signature')
  return { ...c, head: parseTreeHead(c.head) }
}

/** GET /api/keys/cosignatures; verifies nothing. */
export function parseCosignatures(data: Uint8Array | string): CosignaturesAnswer {
  const f = new Fields(parseJSON(data, 'co-signatures'))
  const a = { cosignatures: f.array('cosignatures'), serverKey: f.bytes('server_key', true, 32, 32), head: f.object('tree_head'), keyChanges: parseKeyChanges(f) }
  done(f, 'co-signatures')
  return { serverKey: a.serverKey, head: parseTreeHead(a.head), cosignatures: a.cosignatures.map(parseCosignature), keyChanges: a.keyChanges }
}

function parseFork(v: JSONValue): ForkEvidence {
  const f = new Fields(v)
  const kind = f.str('kind')
  const x = {
    detectedAt: f.int('detected_at', true, 0, MAX_SAFE),
    first: f.object('first'),
    second: f.object('second'),
    server: f.str('server'),
    witness: f.str('witness'),
    consistency: kind === 'inconsistent' ? f.array('consistency') : [],
  }
  done(f, 'fork evidence')
  if (kind !== 'same_size' && kind !== 'inconsistent') throw new E2EEError('malformed', 'fork evidence: unknown kind')
  if (x.consistency.length > MAX_PROOF) throw new E2EEError('malformed', 'fork evidence: too long a proof')
  const consistency = x.consistency.map((s) => {
    const b = typeof s === 'string' ? fromB64(s) : null
    if (b === null || b.length !== 32) throw new E2EEError('malformed', 'fork evidence: consistency is not a list of hashes')
    return b
  })
  return { kind, server: x.server, witness: x.witness, detectedAt: x.detectedAt, first: parseTreeHead(x.first), second: parseTreeHead(x.second), consistency }
}

/** GET /api/keys/forks; verifies nothing. */
export function parseForks(data: Uint8Array | string): ForkEvidence[] {
  const f = new Fields(parseJSON(data, 'forks'))
  const fs = f.array('forks')
  done(f, 'forks')
  return fs.map(parseFork)
}

/**
 * Both heads are the server's, each signed by one of `keys` (its pinned key
 * and the earlier keys this client followed to it, so that evidence made
 * before a key rotation still verifies), or by one of `vouched` — earlier
 * keys the pinned key names as the server's own (earlierKeysFromDocument) —
 * with a timestamp no later than that key was replaced; and they conflict
 * as `kind` says.
 */
export async function verifyFork(e: ForkEvidence, keys: Uint8Array | readonly Uint8Array[], vouched: readonly EarlierServerKey[] = []): Promise<void> {
  const ks = keys instanceof Uint8Array ? [keys] : keys
  if (ks.length === 0) throw new E2EEError('bad_signature', 'fork evidence: no key to check it under')
  for (const h of [e.first, e.second]) {
    if (h.server !== e.server) throw new E2EEError('bad_proof', 'fork evidence: a head of another server')
    let err: unknown
    for (const k of ks) {
      try {
        await verifyTreeHead(h, k)
        err = undefined
        break
      } catch (x) {
        err = x
      }
    }
    if (err === undefined) continue
    let ok = false
    let late = false
    for (const v of vouched) {
      if (!(await ed25519Verify(v.key, treeHeadSigned(h), h.signature))) continue
      if (h.timestamp <= v.replacedAt) {
        ok = true
        break
      }
      late = true
    }
    if (ok) continue
    if (late) throw new E2EEError('bad_signature', `fork evidence: a head of ${e.server} is signed with a key it replaced, and dated after it replaced it`)
    throw err
  }
  const { first: a, second: b } = e
  const conflict =
    e.kind === 'same_size'
      ? a.treeSize === b.treeSize && !equal(a.rootHash, b.rootHash)
      : a.treeSize > 0 && a.treeSize < b.treeSize && !(await verifyConsistency(a.treeSize, b.treeSize, a.rootHash, b.rootHash, e.consistency))
  if (!conflict) throw new E2EEError('bad_proof', 'fork evidence: the two heads do not conflict')
}
