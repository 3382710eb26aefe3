// Key bundles (§6.1), pinning (§6.2) and key change (§6.3).
import { E2EEError } from './errors'
import { type Bytes, concat, constantTimeEqual, toB64 } from './bytes'
import { type JSONObject, CJSONError, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, MAX_SAFE, validAddress } from './fields'
import { checkRsaSpki, keyId } from './keys'
import { LABEL, MAX_BUNDLE, prefixed } from './labels'
import type { PrivateKeys } from './account'
import { ed25519Verify, importRsaPublic, sha256 } from './primitives'

export interface KeyBundle {
  address: string
  createdAt: number
  encryptionKey: Bytes // RSA SPKI DER
  identityKey: Bytes // raw Ed25519 public key
  signature: Bytes
  version: 1
  keyId: string
  /** canonical JSON of the bundle with its signature (the key_bundle text) */
  json: Bytes
  encryptionPublic: CryptoKey
}

function body(address: string, createdAt: number, spki: Uint8Array, identity: Uint8Array): JSONObject {
  return obj([
    ['address', address],
    ['created_at', createdAt],
    ['encryption_key', toB64(spki)],
    ['identity_key', toB64(identity)],
    ['version', 1],
  ])
}

export function bundleSigningInput(address: string, createdAt: number, spki: Uint8Array, identity: Uint8Array): Bytes {
  return prefixed(LABEL.keyBundle, encodeBytes(body(address, createdAt, spki, identity)))
}

/** Parses and verifies a bundle: too_large, malformed, unknown_suite, bad_key, bad_signature. */
export async function parseKeyBundle(data: Uint8Array): Promise<KeyBundle> {
  if (data.length > MAX_BUNDLE) throw new E2EEError('too_large', 'key bundle is larger than 16 KiB')
  let v
  try {
    v = parseBytes(data)
  } catch (e) {
    throw new E2EEError('malformed', `key bundle: ${(e as CJSONError).message}`)
  }
  const f = new Fields(v)
  const version = f.int('version', true, 0, MAX_SAFE)
  if (f.err === null && version !== 1) throw new E2EEError('unknown_suite', `unsupported key bundle version ${version}`)
  const address = f.str('address')
  const createdAt = f.int('created_at', true, 0, MAX_SAFE)
  const spki = f.bytes('encryption_key', true, 1, 4096)
  const identity = f.bytes('identity_key', true, 32, 32)
  const signature = f.bytes('signature', true, 64, 64)
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `key bundle: ${err}`)
  if (!validAddress(address)) throw new E2EEError('malformed', 'key bundle address is invalid')
  checkRsaSpki(spki)
  let encryptionPublic: CryptoKey
  try {
    encryptionPublic = await importRsaPublic(spki)
  } catch {
    throw new E2EEError('bad_key', 'encryption key does not import')
  }
  if (!(await ed25519Verify(identity, bundleSigningInput(address, createdAt, spki, identity), signature)))
    throw new E2EEError('bad_signature', 'key bundle signature is invalid')
  const full = body(address, createdAt, spki, identity)
  full.signature = toB64(signature)
  return {
    address, createdAt, encryptionKey: spki, identityKey: identity, signature, version: 1,
    keyId: await keyId(spki), json: encodeBytes(full), encryptionPublic,
  }
}

/** Makes and signs the bundle of an account's keys. */
export async function makeKeyBundle(keys: PrivateKeys, createdAt: number): Promise<KeyBundle> {
  const sig = await keys.sign(bundleSigningInput(keys.address, createdAt, keys.spki, keys.identityPublic))
  const full = body(keys.address, createdAt, keys.spki, keys.identityPublic)
  full.signature = toB64(sig)
  return parseKeyBundle(encodeBytes(full))
}

/** §6.2: the bundle's identity key must equal the pinned one (`key_changed`). */
export function checkPinned(pinnedIdentity: Uint8Array, b: KeyBundle): void {
  if (!constantTimeEqual(pinnedIdentity, b.identityKey))
    throw new E2EEError('key_changed', "the contact's identity key changed; verify it before trusting it")
}

/** Whether the private keys are those the bundle publishes. */
export function keysMatch(keys: PrivateKeys, b: KeyBundle): boolean {
  return keys.address === b.address && constantTimeEqual(keys.identityPublic, b.identityKey) && keys.keyId === b.keyId
}

export async function keyChangeInput(old: KeyBundle, next: KeyBundle): Promise<Bytes> {
  return prefixed(LABEL.keyChange, concat(await sha256(old.json), await sha256(next.json)))
}

/** §6.3: same address (`malformed`), newer created_at (`stale_bundle`). */
export function checkSuccessor(old: KeyBundle, next: KeyBundle): void {
  if (old.address !== next.address) throw new E2EEError('malformed', 'a new bundle must keep the address')
  if (next.createdAt <= old.createdAt) throw new E2EEError('stale_bundle', 'the new bundle is not newer than the one it replaces')
}

export async function signKeyChange(keys: PrivateKeys, old: KeyBundle, next: KeyBundle): Promise<Bytes> {
  if (!keysMatch(keys, old)) throw new E2EEError('key_changed', 'the keys are not those of the bundle being replaced')
  checkSuccessor(old, next)
  return keys.sign(await keyChangeInput(old, next))
}

export async function verifyKeyChange(old: KeyBundle, next: KeyBundle, sig: Uint8Array): Promise<void> {
  checkSuccessor(old, next)
  if (!(await ed25519Verify(old.identityKey, await keyChangeInput(old, next), sig)))
    throw new E2EEError('bad_signature', 'the key change is not signed by the current identity key')
}
