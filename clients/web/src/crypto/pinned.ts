// The pinned-keys blob (spec/e2ee.md §18): the identity keys a user's
// clients pinned, sealed under the account's kek so that pins roam between
// devices and the server can neither read nor forge them. Go: e2ee.SealPins,
// e2ee.OpenPins, e2ee.MergePins.
import { E2EEError } from './errors'
import { type Bytes, compareBytewise, concat, constantTimeEqual, toB64, toHex, utf8 } from './bytes'
import { encodeBytes, obj, parseCanonical } from './cjson'
import { Fields, MAX_SAFE, isObject, validAddress } from './fields'
import { LABEL, NONCE_SIZE, PAD_BLOCK, prefixed } from './labels'
import { pad, unpad } from './padding'
import { aesGcmOpen, aesGcmSeal, random } from './primitives'

export const PINS_VERSION = 1
export const MAX_PINNED_BLOB = 256 * 1024

export interface Pin {
  /** raw Ed25519 public key, 32 bytes */
  identityKey: Bytes
  /** ms since the epoch: when this key was pinned */
  firstSeen: number
  verified: boolean
  /** ms; present exactly when verified */
  verifiedAt?: number
}

/** Pins by contact address. */
export type Pins = Map<string, Pin>

function checkPin(address: string, p: Pin): void {
  if (!validAddress(address)) throw new E2EEError('malformed', 'pinned address is invalid')
  if (p.identityKey.length !== 32) throw new E2EEError('malformed', 'a pinned identity key is 32 bytes')
  if (!Number.isSafeInteger(p.firstSeen) || p.firstSeen < 0) throw new E2EEError('malformed', 'first_seen must be a time in ms')
  if (p.verified !== (p.verifiedAt !== undefined)) throw new E2EEError('malformed', 'a pin has verified_at exactly when it is verified')
  if (p.verifiedAt !== undefined && (!Number.isSafeInteger(p.verifiedAt) || p.verifiedAt < 0))
    throw new E2EEError('malformed', 'verified_at must be a time in ms')
}

/** The canonical JSON plaintext of §18.1, unpadded. */
export function encodePins(pins: Pins): Bytes {
  const m = obj()
  for (const [addr, p] of pins) {
    checkPin(addr, p)
    const v = obj([
      ['first_seen', p.firstSeen],
      ['identity_key', toB64(p.identityKey)],
      ['verified', p.verified],
    ])
    if (p.verifiedAt !== undefined) v.verified_at = p.verifiedAt
    m[addr] = v
  }
  return encodeBytes(obj([['pins', m], ['v', PINS_VERSION]]))
}

/** Parses the plaintext: malformed, non_canonical, unknown_suite, too_large. */
export function decodePins(data: Uint8Array): Pins {
  if (data.length > MAX_PINNED_BLOB) throw new E2EEError('too_large', 'pins are too large')
  const f = new Fields(parseCanonical(data, 'pins'))
  const v = f.int('v', true, 0, MAX_SAFE)
  if (f.err === null && v !== PINS_VERSION) throw new E2EEError('unknown_suite', 'unsupported pinned-keys version')
  const pm = f.object('pins', true)
  const problem = f.done(false)
  if (problem !== null) throw new E2EEError('malformed', `pins: ${problem}`)
  const out: Pins = new Map()
  for (const addr of Object.keys(pm)) {
    if (!validAddress(addr)) throw new E2EEError('malformed', 'pins: invalid address')
    const pv = pm[addr]
    const bad = () => new E2EEError('malformed', `pins: the pin of ${addr} is malformed`)
    if (!isObject(pv)) throw bad()
    const verified = pv.verified
    if (typeof verified !== 'boolean') throw bad()
    const hasAt = Object.prototype.hasOwnProperty.call(pv, 'verified_at')
    const pf = new Fields(pv)
    const firstSeen = pf.int('first_seen', true, 0, MAX_SAFE)
    const identityKey = pf.bytes('identity_key', true, 32, 32)
    pf.get('verified', true)
    const verifiedAt = pf.int('verified_at', verified, 0, MAX_SAFE)
    if (pf.done(false) !== null || hasAt !== verified) throw bad()
    out.set(addr, verified ? { identityKey, firstSeen, verified, verifiedAt } : { identityKey, firstSeen, verified })
  }
  return out
}

function pinsAAD(account: string): Bytes {
  return prefixed(LABEL.pinnedKeys, utf8(account))
}

/** blob = nonce ‖ AES-GCM(kek, nonce, pad(plaintext), aad) (§18.2). */
export async function sealPins(kek: CryptoKey, account: string, pins: Pins, nonce: Uint8Array = random(NONCE_SIZE)): Promise<Bytes> {
  if (!validAddress(account)) throw new E2EEError('malformed', 'invalid account address')
  if (nonce.length !== NONCE_SIZE) throw new E2EEError('malformed', 'nonce must be 12 bytes')
  const padded = pad(encodePins(pins))
  if (NONCE_SIZE + padded.length + 16 > MAX_PINNED_BLOB) throw new E2EEError('too_large', "too many pinned keys for the server's blob size")
  return concat(nonce, await aesGcmSeal(kek, nonce, padded, pinsAAD(account)))
}

/** Opens a blob sealed by sealPins for account; the empty blob (version 0) is no pins. */
export async function openPins(kek: CryptoKey, account: string, blob: Uint8Array): Promise<Pins> {
  if (blob.length === 0) return new Map()
  if (blob.length > MAX_PINNED_BLOB) throw new E2EEError('too_large', 'pinned-keys blob is too large')
  if (blob.length < NONCE_SIZE + PAD_BLOCK + 16) throw new E2EEError('malformed', 'pinned-keys blob is too short')
  const padded = await aesGcmOpen(kek, blob.slice(0, NONCE_SIZE), blob.slice(NONCE_SIZE), pinsAAD(account))
  if (padded === null)
    throw new E2EEError('decrypt_failed', 'the pinned-keys blob does not decrypt (tampered with, or sealed under another password)')
  return decodePins(unpad(padded))
}

function mergePin(a: Pin, b: Pin): Pin {
  if (constantTimeEqual(a.identityKey, b.identityKey)) {
    const firstSeen = Math.min(a.firstSeen, b.firstSeen)
    if (a.verified && b.verified) return { identityKey: a.identityKey, firstSeen, verified: true, verifiedAt: Math.max(a.verifiedAt!, b.verifiedAt!) }
    const v = a.verified ? a : b.verified ? b : undefined
    return v ? { identityKey: a.identityKey, firstSeen, verified: true, verifiedAt: v.verifiedAt } : { identityKey: a.identityKey, firstSeen, verified: false }
  }
  if (a.firstSeen !== b.firstSeen) return a.firstSeen > b.firstSeen ? a : b
  if (a.verified !== b.verified) return a.verified ? a : b
  return compareBytewise(toHex(a.identityKey), toHex(b.identityKey)) > 0 ? a : b
}

/** Merges two pin sets (§18.3); the result does not depend on the order of the arguments. */
export function mergePins(a: Pins, b: Pins): Pins {
  const out: Pins = new Map(a)
  for (const [addr, pb] of b) {
    const pa = out.get(addr)
    out.set(addr, pa === undefined ? pb : mergePin(pa, pb))
  }
  return out
}

