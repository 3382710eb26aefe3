// Account keys (§5.1), key ids (§5.2).
import { E2EEError } from './errors'
import { type Bytes, concat, equal, fromB64, fromHex, toHex } from './bytes'
import { RSA_BITS } from './labels'
import { importEd25519Private, importRsaPrivate, sha256, subtle } from './primitives'

/** 16-byte prefix of the only accepted Ed25519 PKCS #8 form (RFC 8410 §7). */
export const ED25519_PKCS8_PREFIX = fromHex('302e020100300506032b657004220420')

/**
 * The canonical DER SPKI of an RSA-4096 key with exponent 65537 has exactly
 * this shape: prefix ‖ 512-byte modulus (top bit set) ‖ INTEGER 65537.
 */
const SPKI_PREFIX = fromHex('30820222300d06092a864886f70d01010105000382020f003082020a0282020100')
const SPKI_SUFFIX = fromHex('0203010001')
export const SPKI_SIZE = SPKI_PREFIX.length + 512 + SPKI_SUFFIX.length

export function ed25519Pkcs8(seed: Uint8Array): Bytes {
  if (seed.length !== 32) throw new E2EEError('bad_key', 'Ed25519 seed must be 32 bytes')
  return concat(ED25519_PKCS8_PREFIX, seed)
}

export function isEd25519Pkcs8(der: Uint8Array): boolean {
  return der.length === 48 && equal(der.subarray(0, 16), ED25519_PKCS8_PREFIX)
}

/** Checks an RSA SPKI against §5.1 (form, 4096 bits, e = 65537, canonical DER): `bad_key`. */
export function checkRsaSpki(spki: Uint8Array): void {
  const ok =
    spki.length === SPKI_SIZE &&
    equal(spki.subarray(0, SPKI_PREFIX.length), SPKI_PREFIX) &&
    (spki[SPKI_PREFIX.length] & 0x80) !== 0 &&
    equal(spki.subarray(SPKI_SIZE - SPKI_SUFFIX.length), SPKI_SUFFIX)
  if (!ok) throw new E2EEError('bad_key', 'encryption key must be a canonical RSA-4096 SPKI with e = 65537')
}

export function spkiFromModulus(n: Uint8Array): Bytes {
  return concat(SPKI_PREFIX, n, SPKI_SUFFIX)
}

/** key_id = hex(SHA-256(SPKI DER)[0:16]). */
export async function keyId(spki: Uint8Array): Promise<string> {
  return toHex((await sha256(spki)).subarray(0, 16))
}

/** A minimal strict DER reader, enough for PKCS #8 RSA private keys. */
class Der {
  i = 0
  constructor(readonly b: Uint8Array) {}
  tlv(tag: number): Bytes {
    const b = this.b
    if (this.i + 2 > b.length || b[this.i] !== tag) throw new Error('unexpected DER tag')
    let len = b[this.i + 1]
    let o = this.i + 2
    if (len & 0x80) {
      const nb = len & 0x7f
      if (nb === 0 || nb > 3 || o + nb > b.length || b[o] === 0) throw new Error('bad DER length')
      len = 0
      for (let k = 0; k < nb; k++) len = (len << 8) | b[o + k]
      if (len < 0x80) throw new Error('non-minimal DER length')
      o += nb
    }
    if (o + len > b.length) throw new Error('truncated DER')
    this.i = o + len
    return b.slice(o, o + len)
  }
}

/** Reads modulus and exponent out of an RSA PKCS #8 DER (RFC 5208 / RFC 8017 A.1.2). */
export function rsaPkcs8PublicParts(der: Uint8Array): { n: Bytes; e: Bytes } {
  const outer = new Der(der)
  const body = new Der(outer.tlv(0x30))
  if (outer.i !== der.length) throw new Error('trailing bytes')
  body.tlv(0x02) // version
  const alg = body.tlv(0x30)
  if (!equal(alg, fromHex('06092a864886f70d0101010500'))) throw new Error('not rsaEncryption')
  const rsa = new Der(new Der(body.tlv(0x04)).tlv(0x30))
  rsa.tlv(0x02) // version
  let n = rsa.tlv(0x02)
  const e = rsa.tlv(0x02)
  if (n[0] === 0) n = n.slice(1)
  return { n, e }
}

export interface EncryptionPrivate {
  key: CryptoKey // RSA-OAEP, non-extractable, ['decrypt']
  spki: Bytes
  keyId: string
}

/** Imports an RSA-4096 PKCS #8 private key as non-extractable (`bad_key` if it is not one). */
export async function importEncryptionPrivate(pkcs8: Uint8Array): Promise<EncryptionPrivate> {
  let spki: Bytes
  let key: CryptoKey
  try {
    const { n, e } = rsaPkcs8PublicParts(pkcs8)
    if (n.length !== RSA_BITS / 8 || (n[0] & 0x80) === 0 || !equal(e, fromHex('010001'))) throw new Error('not RSA-4096/65537')
    spki = spkiFromModulus(n)
    key = await importRsaPrivate(pkcs8, false)
  } catch (err) {
    throw new E2EEError('bad_key', `encryption private key: ${(err as Error).message}`)
  }
  return { key, spki, keyId: await keyId(spki) }
}

export interface IdentityPrivate {
  key: CryptoKey // Ed25519, non-extractable, ['sign']
  publicKey: Bytes // raw 32 bytes
}

/**
 * Imports the 48-byte Ed25519 PKCS #8 as a non-extractable signing key.
 * WebCrypto cannot derive a public key from a non-extractable private key, so
 * the public key is read from the JWK export of a short-lived extractable
 * import of the same bytes (which the caller already holds in memory).
 */
export async function importIdentityPrivate(pkcs8: Uint8Array): Promise<IdentityPrivate> {
  if (!isEd25519Pkcs8(pkcs8)) throw new E2EEError('bad_key', 'identity key must be the 48-byte RFC 8410 PKCS #8')
  try {
    const tmp = await importEd25519Private(pkcs8, true)
    const jwk = await subtle.exportKey('jwk', tmp)
    const x = fromB64(b64urlToB64(jwk.x ?? ''))
    if (x === null || x.length !== 32) throw new Error('no public key')
    return { key: await importEd25519Private(pkcs8, false), publicKey: x }
  } catch (err) {
    if (err instanceof E2EEError) throw err
    throw new E2EEError('bad_key', `identity key: ${(err as Error).message}`)
  }
}

export function b64urlToB64(s: string): string {
  const t = s.replace(/-/g, '+').replace(/_/g, '/')
  return t + '='.repeat((4 - (t.length % 4)) % 4)
}
