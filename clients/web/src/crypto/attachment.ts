// Attachments (§9): blob = nonce ‖ AES-GCM(key, nonce, data, "privateline/v1/attachment").
import { E2EEError } from './errors'
import { type Bytes, concat, constantTimeEqual, utf8 } from './bytes'
import { KEY_SIZE, LABEL, MAX_ATTACHMENT, NONCE_SIZE } from './labels'
import { aesGcmOpen, aesGcmSeal, random, sha256 } from './primitives'

export interface SealedAttachment {
  key: Bytes
  blob: Bytes
  sha256: Bytes
  size: number
}

export async function sealAttachment(data: Uint8Array, fixed: { key?: Uint8Array; nonce?: Uint8Array } = {}): Promise<SealedAttachment> {
  if (data.length > MAX_ATTACHMENT) throw new E2EEError('too_large', 'attachment is larger than 100 MiB')
  const key = fixed.key ?? random(KEY_SIZE)
  const nonce = fixed.nonce ?? random(NONCE_SIZE)
  const blob = concat(nonce, await aesGcmSeal(key, nonce, data, utf8(LABEL.attachment)))
  return { key: new Uint8Array(key), blob, sha256: await sha256(blob), size: data.length }
}

/** Checks and decrypts a downloaded blob, in the order of §12.4. */
export async function openAttachment(blob: Uint8Array, ref: { key: Uint8Array; sha256: Uint8Array; size: number }): Promise<Bytes> {
  if (blob.length > MAX_ATTACHMENT + NONCE_SIZE + 16) throw new E2EEError('too_large', 'attachment blob is too large')
  if (!constantTimeEqual(await sha256(blob), ref.sha256)) throw new E2EEError('hash_mismatch', 'the blob does not match its SHA-256')
  if (ref.key.length !== KEY_SIZE || blob.length < NONCE_SIZE + 16) throw new E2EEError('malformed', 'attachment key or blob has the wrong size')
  const data = await aesGcmOpen(ref.key, blob.subarray(0, NONCE_SIZE), blob.subarray(NONCE_SIZE), utf8(LABEL.attachment))
  if (data === null) throw new E2EEError('decrypt_failed', 'the attachment does not decrypt')
  if (data.length !== ref.size) throw new E2EEError('malformed', 'the attachment size differs from the message')
  return data
}
