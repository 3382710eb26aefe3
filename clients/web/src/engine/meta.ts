// Group metadata (spec/e2ee.md §19): the group's name sealed under a key
// derived from the group key of an epoch, bound to the group id and epoch.
import { E2EEError } from '../crypto/errors'
import { type Bytes, concat, utf8 } from '../crypto/bytes'
import { encodeBytes, obj, parseCanonical } from '../crypto/cjson'
import { Fields, MAX_SAFE } from '../crypto/fields'
import type { GroupKey } from '../crypto/group'
import { pad, unpad } from '../crypto/padding'
import { aesGcmOpen, aesGcmSeal, hkdf, random } from '../crypto/primitives'

export const META_LABEL = 'privateline/v1/group-meta'
export const META_VERSION = 1
/** The server keeps at most 4096 base64 characters: 3072 bytes. */
export const MAX_META = 3072
export const MAX_NAME_BYTES = 256

export interface GroupMeta {
  name: string
}

function u64be(n: number): Bytes {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(n))
  return b
}

function metaAAD(group: string, epoch: number): Bytes {
  return concat(utf8(META_LABEL), new Uint8Array([0]), utf8(group), new Uint8Array([0]), u64be(epoch))
}

function metaKey(gk: GroupKey): Promise<Bytes> {
  return hkdf(gk.key, new Uint8Array(0), utf8(META_LABEL), 32)
}

/** The epoch a meta blob is sealed under (to fetch its key), or a refusal. */
export function metaEpoch(blob: Uint8Array): number {
  if (blob.length < 1 + 8 + 12 + 256 + 16 || blob[0] !== META_VERSION) throw new E2EEError('malformed', 'group meta: unknown layout')
  const e = new DataView(blob.buffer, blob.byteOffset + 1, 8).getBigUint64(0)
  if (e < 1n || e > BigInt(MAX_SAFE)) throw new E2EEError('malformed', 'group meta: epoch out of range')
  return Number(e)
}

/** blob = 0x01 ‖ u64be(epoch) ‖ nonce ‖ AES-GCM(k, nonce, pad({"name","v"}), aad). */
export async function sealMeta(gk: GroupKey, m: GroupMeta, nonce: Uint8Array = random(12)): Promise<Bytes> {
  if (utf8(m.name).length > MAX_NAME_BYTES) throw new E2EEError('too_large', 'a group name has at most 256 bytes')
  const pt = pad(encodeBytes(obj([['name', m.name], ['v', META_VERSION]])))
  const ct = await aesGcmSeal(await metaKey(gk), nonce, pt, metaAAD(gk.group, gk.epoch))
  const out = concat(new Uint8Array([META_VERSION]), u64be(gk.epoch), nonce, ct)
  if (out.length > MAX_META) throw new E2EEError('too_large', 'group meta is too large')
  return out
}

/** Opens a meta blob with the key of its epoch: malformed, decrypt_failed, bad_padding, non_canonical. */
export async function openMeta(gk: GroupKey, blob: Uint8Array): Promise<GroupMeta> {
  if (blob.length > MAX_META) throw new E2EEError('too_large', 'group meta is too large')
  const epoch = metaEpoch(blob)
  if (epoch !== gk.epoch) throw new E2EEError('wrong_epoch', 'group meta of another epoch')
  const pt = await aesGcmOpen(await metaKey(gk), blob.subarray(9, 21), blob.subarray(21), metaAAD(gk.group, epoch))
  if (pt === null) throw new E2EEError('decrypt_failed', 'group meta does not decrypt')
  const f = new Fields(parseCanonical(unpad(pt), 'group meta'))
  const name = f.str('name')
  const v = f.int('v', true, 0, MAX_SAFE)
  const err = f.done(true)
  if (err !== null) throw new E2EEError('malformed', `group meta: ${err}`)
  if (v !== META_VERSION) throw new E2EEError('unknown_suite', 'unknown group meta version')
  if (utf8(name).length > MAX_NAME_BYTES) throw new E2EEError('malformed', 'group meta: name too long')
  return { name }
}
