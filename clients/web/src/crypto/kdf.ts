// Password → auth key and key-encryption key (§4).
import { E2EEError } from './errors'
import { type Bytes, utf8 } from './bytes'
import { LABEL, MAX_ITERATIONS, MIN_ITERATIONS } from './labels'
import { pbkdf2, subtle } from './primitives'

export interface KdfParams {
  kdf: string
  iterations: number
  salt: Uint8Array
}

/** Refuses (`weak_kdf`) an announcement a server must not be able to talk a client into. */
export function checkKdf(p: { kdf: string; iterations: number }): void {
  if (p.kdf !== 'pbkdf2-sha256') throw new E2EEError('weak_kdf', `unsupported kdf ${JSON.stringify(p.kdf)}`)
  if (!Number.isSafeInteger(p.iterations) || p.iterations < MIN_ITERATIONS || p.iterations > MAX_ITERATIONS)
    throw new E2EEError('weak_kdf', `iterations ${p.iterations} outside ${MIN_ITERATIONS}–${MAX_ITERATIONS}`)
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** UTF-8(NFC(password)); refuses an empty password or lone surrogates. */
export function normalizePassword(password: string): Bytes {
  if (password.length === 0 || loneSurrogate.test(password)) throw new E2EEError('malformed', 'password must be non-empty valid Unicode')
  return utf8(password.normalize('NFC'))
}

/** master = PBKDF2-HMAC-SHA256(pw, salt, iterations, 32). Exposed for tests. */
export async function deriveMaster(password: string, p: KdfParams): Promise<Bytes> {
  checkKdf(p)
  if (p.salt.length !== 16) throw new E2EEError('malformed', 'salt must be 16 bytes')
  return pbkdf2(normalizePassword(password), p.salt, p.iterations, 32)
}

export interface PasswordKeys {
  /** sent as auth_key (b64) at registration and login */
  authKey: Bytes
  /** AES-256-GCM, non-extractable: never leaves the client */
  kek: CryptoKey
}

/** Derives auth_key (bytes) and kek (a non-extractable AES-GCM CryptoKey) from master. */
export async function keysFromMaster(master: Uint8Array): Promise<PasswordKeys> {
  const base = await subtle.importKey('raw', master as Bytes, 'HKDF', false, ['deriveBits', 'deriveKey'])
  const empty = new Uint8Array(0)
  const authKey = new Uint8Array(
    await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: empty, info: utf8(LABEL.auth) }, base, 256),
  )
  const kek = await subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: empty, info: utf8(LABEL.keyWrap) },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  )
  return { authKey, kek }
}

export async function derivePasswordKeys(password: string, p: KdfParams): Promise<PasswordKeys> {
  const master = await deriveMaster(password, p)
  try {
    return await keysFromMaster(master)
  } finally {
    master.fill(0)
  }
}
