// RFC 6962 / RFC 9162 §2.1 Merkle tree hashing and proof verification.
import { type Bytes, concat, equal } from './bytes'
import { sha256 } from './primitives'

export function leafHash(leaf: Uint8Array): Promise<Bytes> {
  return sha256(concat(new Uint8Array([0]), leaf))
}

export function nodeHash(l: Uint8Array, r: Uint8Array): Promise<Bytes> {
  return sha256(concat(new Uint8Array([1]), l, r))
}

/** RFC 9162 §2.1.3.2. Sizes are safe integers; bit operations use BigInt. */
export async function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: Uint8Array[], root: Uint8Array): Promise<boolean> {
  if (index >= size || index < 0) return false
  let fn = BigInt(index)
  let sn = BigInt(size - 1)
  let r = leaf
  for (const p of proof) {
    if (sn === 0n) return false
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r)
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n
          sn >>= 1n
        }
      }
    } else r = await nodeHash(r, p)
    fn >>= 1n
    sn >>= 1n
  }
  return sn === 0n && equal(r, root)
}

/** RFC 9162 §2.1.4.2. */
export async function verifyConsistency(first: number, second: number, firstRoot: Uint8Array, secondRoot: Uint8Array, proof: Uint8Array[]): Promise<boolean> {
  if (first < 1 || first > second) return false
  if (first === second) return proof.length === 0 && equal(firstRoot, secondRoot)
  let path = proof
  if ((BigInt(first) & (BigInt(first) - 1n)) === 0n) path = [firstRoot, ...proof]
  if (path.length === 0) return false
  let fn = BigInt(first - 1)
  let sn = BigInt(second - 1)
  while ((fn & 1n) === 1n) {
    fn >>= 1n
    sn >>= 1n
  }
  let fr = path[0]
  let sr = path[0]
  for (const c of path.slice(1)) {
    if (sn === 0n) return false
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr)
      sr = await nodeHash(c, sr)
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n
        sn >>= 1n
      }
    } else sr = await nodeHash(sr, c)
    fn >>= 1n
    sn >>= 1n
  }
  return sn === 0n && equal(fr, firstRoot) && equal(sr, secondRoot)
}
