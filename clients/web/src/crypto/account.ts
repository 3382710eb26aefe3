// Account keys: generation, the private-key wrap (§5.3).
import { E2EEError } from './errors'
import { type Bytes, concat, fromB64, u16be, utf8 } from './bytes'
import { validAddress } from './fields'
import { LABEL, MAX_PRIVATE_KEY_BLOB, NONCE_SIZE, RSA_BITS, prefixed } from './labels'
import { type EncryptionPrivate, type IdentityPrivate, b64urlToB64, ed25519Pkcs8, importEncryptionPrivate, importIdentityPrivate, isEd25519Pkcs8 } from './keys'
import { aesGcmOpen, aesGcmSeal, ed25519Sign, oaepDecrypt, random, subtle } from './primitives'

/** An account's private keys, both non-extractable CryptoKeys. */
export class PrivateKeys {
  constructor(
    readonly address: string,
    readonly identity: IdentityPrivate,
    readonly encryption: EncryptionPrivate,
  ) {}
  get identityPublic(): Bytes {
    return this.identity.publicKey
  }
  get spki(): Bytes {
    return this.encryption.spki
  }
  get keyId(): string {
    return this.encryption.keyId
  }
  sign(m: Uint8Array): Promise<Bytes> {
    return ed25519Sign(this.identity.key, m)
  }
  unwrap(c: Uint8Array, label: string): Promise<Bytes | null> {
    return oaepDecrypt(this.encryption.key, c, label)
  }
}

export function privateKeysAAD(address: string): Bytes {
  return prefixed(LABEL.privateKeys, utf8(address))
}

/** plaintext = 0x01 ‖ u16be(48) ‖ Ed25519 PKCS #8 ‖ u16be(n) ‖ RSA PKCS #8. */
export function privateKeysPlaintext(ed25519: Uint8Array, rsa: Uint8Array): Bytes {
  if (!isEd25519Pkcs8(ed25519)) throw new E2EEError('bad_key', 'identity key must be the 48-byte PKCS #8')
  return concat(new Uint8Array([1]), u16be(48), ed25519, u16be(rsa.length), rsa)
}

export interface WrappedKeys {
  nonce: Bytes
  encryptedPrivateKey: Bytes
}

/** Wraps the private keys' PKCS #8 bytes under kek with a fresh nonce. */
export async function wrapPrivateKeys(kek: CryptoKey, address: string, ed25519: Uint8Array, rsa: Uint8Array, nonce = random(NONCE_SIZE)): Promise<WrappedKeys> {
  const pt = privateKeysPlaintext(ed25519, rsa)
  try {
    return { nonce, encryptedPrivateKey: await aesGcmSeal(kek, nonce, pt, privateKeysAAD(address)) }
  } finally {
    pt.fill(0)
  }
}

/** The unwrapped key bytes, kept only to re-wrap (password change) without extracting keys. */
export interface UnwrappedKeys {
  keys: PrivateKeys
  ed25519Pkcs8: Bytes
  rsaPkcs8: Bytes
}

/** Unwraps and imports the private keys (`unwrap_failed`, `malformed`, `bad_key`). */
export async function unwrapPrivateKeys(kek: CryptoKey, address: string, nonce: Uint8Array, encrypted: Uint8Array): Promise<UnwrappedKeys> {
  if (!validAddress(address)) throw new E2EEError('malformed', 'invalid address')
  if (encrypted.length > MAX_PRIVATE_KEY_BLOB) throw new E2EEError('malformed', 'encrypted_private_key is larger than 16 KiB')
  if (nonce.length !== NONCE_SIZE) throw new E2EEError('malformed', 'nonce must be 12 bytes')
  const pt = await aesGcmOpen(kek, nonce, encrypted, privateKeysAAD(address))
  if (pt === null) throw new E2EEError('unwrap_failed', 'the private keys do not decrypt (wrong password or account)')
  if (pt.length < 3 + 48 + 2 || pt[0] !== 1 || pt[1] !== 0 || pt[2] !== 48)
    throw new E2EEError('malformed', 'private keys: unknown layout')
  const ed = pt.slice(3, 51)
  const n = (pt[51] << 8) | pt[52]
  if (pt.length !== 53 + n) throw new E2EEError('malformed', 'private keys: wrong length or trailing bytes')
  const rsa = pt.slice(53)
  const identity = await importIdentityPrivate(ed)
  const encryption = await importEncryptionPrivate(rsa)
  return { keys: new PrivateKeys(address, identity, encryption), ed25519Pkcs8: ed, rsaPkcs8: rsa }
}

/**
 * Makes new account keys. Generation must be extractable: the PKCS #8 bytes
 * are exported once to be wrapped under kek; the keys are then re-imported
 * as non-extractable CryptoKeys and the extractable ones are dropped.
 */
export async function generateKeys(address: string): Promise<UnwrappedKeys> {
  if (!validAddress(address)) throw new E2EEError('malformed', 'invalid address')
  const id = (await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair
  let ed = new Uint8Array(await subtle.exportKey('pkcs8', id.privateKey))
  if (!isEd25519Pkcs8(ed)) {
    // A browser whose pkcs8 export differs: build the RFC 8410 form from the JWK seed.
    const jwk = await subtle.exportKey('jwk', id.privateKey)
    const d = fromB64(b64urlToB64(jwk.d ?? ''))
    if (d === null) throw new E2EEError('bad_key', 'cannot export the Ed25519 seed')
    ed = ed25519Pkcs8(d)
  }
  const rk = (await subtle.generateKey(
    { name: 'RSA-OAEP', modulusLength: RSA_BITS, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['encrypt', 'decrypt'],
  )) as CryptoKeyPair
  const rsa = new Uint8Array(await subtle.exportKey('pkcs8', rk.privateKey))
  const identity = await importIdentityPrivate(ed)
  const encryption = await importEncryptionPrivate(rsa)
  return { keys: new PrivateKeys(address, identity, encryption), ed25519Pkcs8: ed, rsaPkcs8: rsa }
}

/** Keys from the test vectors' seed and RSA PKCS #8 (parties.json). */
export async function privateKeysFrom(address: string, ed25519Pkcs8Bytes: Uint8Array, rsaPkcs8: Uint8Array): Promise<PrivateKeys> {
  return new PrivateKeys(address, await importIdentityPrivate(ed25519Pkcs8Bytes), await importEncryptionPrivate(rsaPkcs8))
}
