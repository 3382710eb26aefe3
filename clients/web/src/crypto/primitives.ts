// Thin typed wrappers over WebCrypto (globalThis.crypto.subtle): nothing
// else is used for cryptography.
import { type Bytes, utf8 } from './bytes'

export const subtle: SubtleCrypto = globalThis.crypto.subtle

export function random(n: number): Bytes {
  const b = new Uint8Array(n)
  globalThis.crypto.getRandomValues(b)
  return b
}

export async function sha256(data: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await subtle.digest('SHA-256', data as Bytes))
}

export async function sha512(data: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await subtle.digest('SHA-512', data as Bytes))
}

/** HKDF-SHA256 (RFC 5869) as bytes. */
export async function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<Bytes> {
  const k = await subtle.importKey('raw', ikm as Bytes, 'HKDF', false, ['deriveBits'])
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: salt as Bytes, info: info as Bytes }, k, length * 8))
}

/** PBKDF2-HMAC-SHA256 as bytes. */
export async function pbkdf2(password: Uint8Array, salt: Uint8Array, iterations: number, length: number): Promise<Bytes> {
  const k = await subtle.importKey('raw', password as Bytes, 'PBKDF2', false, ['deriveBits'])
  return new Uint8Array(await subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: salt as Bytes, iterations }, k, length * 8))
}

export async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Bytes> {
  const k = await subtle.importKey('raw', key as Bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return new Uint8Array(await subtle.sign('HMAC', k, data as Bytes))
}

/** Imports a 32-byte AES-256-GCM key, non-extractable. */
export async function aesKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length !== 32) throw new Error('AES-256 key must be 32 bytes')
  return subtle.importKey('raw', raw as Bytes, 'AES-GCM', false, ['encrypt', 'decrypt'])
}

async function asAesKey(k: CryptoKey | Uint8Array): Promise<CryptoKey> {
  return k instanceof Uint8Array ? aesKey(k) : k
}

/** AES-256-GCM; the result is ciphertext ‖ 16-byte tag. */
export async function aesGcmSeal(key: CryptoKey | Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Promise<Bytes> {
  const k = await asAesKey(key)
  return new Uint8Array(
    await subtle.encrypt({ name: 'AES-GCM', iv: nonce as Bytes, additionalData: aad as Bytes, tagLength: 128 }, k, plaintext as Bytes),
  )
}

/** AES-256-GCM open; null if the tag does not verify. */
export async function aesGcmOpen(key: CryptoKey | Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<Bytes | null> {
  const k = await asAesKey(key)
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: 'AES-GCM', iv: nonce as Bytes, additionalData: aad as Bytes, tagLength: 128 }, k, ciphertext as Bytes),
    )
  } catch {
    return null
  }
}

export const RSA_OAEP = { name: 'RSA-OAEP', hash: 'SHA-256' } as const

export async function importRsaPublic(spki: Uint8Array): Promise<CryptoKey> {
  return subtle.importKey('spki', spki as Bytes, RSA_OAEP, true, ['encrypt'])
}

/** Imports an RSA PKCS #8 private key as a non-extractable decryption key. */
export async function importRsaPrivate(pkcs8: Uint8Array, extractable = false): Promise<CryptoKey> {
  return subtle.importKey('pkcs8', pkcs8 as Bytes, RSA_OAEP, extractable, ['decrypt'])
}

export async function oaepEncrypt(pub: CryptoKey, m: Uint8Array, label: string): Promise<Bytes> {
  return new Uint8Array(await subtle.encrypt({ name: 'RSA-OAEP', label: utf8(label) }, pub, m as Bytes))
}

/** RSA-OAEP-SHA256 decryption; null on any failure. */
export async function oaepDecrypt(priv: CryptoKey, c: Uint8Array, label: string | Uint8Array): Promise<Bytes | null> {
  try {
    const l = typeof label === 'string' ? utf8(label) : (label as Bytes)
    return new Uint8Array(await subtle.decrypt({ name: 'RSA-OAEP', label: l }, priv, c as Bytes))
  } catch {
    return null
  }
}

export async function importEd25519Public(raw: Uint8Array): Promise<CryptoKey> {
  return subtle.importKey('raw', raw as Bytes, { name: 'Ed25519' }, true, ['verify'])
}

export async function importEd25519Private(pkcs8: Uint8Array, extractable = false): Promise<CryptoKey> {
  return subtle.importKey('pkcs8', pkcs8 as Bytes, { name: 'Ed25519' }, extractable, ['sign'])
}

export async function ed25519Sign(priv: CryptoKey, m: Uint8Array): Promise<Bytes> {
  return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, priv, m as Bytes))
}

/** Pure Ed25519 verification; false on a bad key, signature or message. */
export async function ed25519Verify(pub: Uint8Array | CryptoKey, m: Uint8Array, sig: Uint8Array): Promise<boolean> {
  try {
    if (sig.length !== 64) return false
    const k = pub instanceof Uint8Array ? await importEd25519Public(pub) : pub
    return await subtle.verify({ name: 'Ed25519' }, k, sig as Bytes, m as Bytes)
  } catch {
    return false
  }
}
