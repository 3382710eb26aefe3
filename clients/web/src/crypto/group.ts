// Group keys (§8.1, §12.3) and group messages (§8.2, §12.2).
import { E2EEError } from './errors'
import { type Bytes, compareBytewise, concat, equal, strictlyAscending, toB64 } from './bytes'
import { type JSONObject, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, MAX_SAFE, tokenRE, validAddress } from './fields'
import { type Header, headerAAD, isGroupHeader } from './header'
import { GROUP_SALT_SIZE, KEY_SIZE, LABEL, MAX_GROUP_KEY_DOC, MAX_MEMBERS, NONCE_SIZE, RSA_CIPHERTEXT_SIZE, SUITE, VERSION, prefixed, } from './labels'
import { type Draft, type Envelope, type SealRandom, keysValue, newMessageId, openPlaintext, parseWrapMap, preparePlaintext } from './envelope'
import type { Message } from './message'
import { fileIds } from './message'
import type { PrivateKeys } from './account'
import type { KeyBundle } from './bundle'
import { aesGcmSeal, ed25519Verify, hkdf, oaepEncrypt, random, sha256 } from './primitives'
import { utf8 } from './bytes'

export interface GroupKey {
  group: string
  epoch: number
  from: string
  members: string[] // sorted
  createdAt: number
  /** the 32-byte group key; kept as bytes because HKDF derives per-message keys from it */
  key: Bytes
}

function signedBody(group: string, epoch: number, from: string, members: string[], createdAt: number, digests: Map<string, Uint8Array>): JSONObject {
  return obj([
    ['v', VERSION],
    ['suite', SUITE],
    ['group', group],
    ['epoch', epoch],
    ['from', from],
    ['members', [...members]],
    ['created_at', createdAt],
    ['key_digests', keysValue(digests)],
  ])
}

export function groupKeySigned(body: JSONObject): Bytes {
  return prefixed(LABEL.groupKey, encodeBytes(body))
}

/** Makes a new epoch's key and its distribution document (every member's wrap). */
export async function sealGroupKey(from: PrivateKeys, group: string, epoch: number, createdAt: number, members: KeyBundle[], fixedKey?: Uint8Array): Promise<{ key: GroupKey; document: Bytes }> {
  if (!tokenRE.test(group) || !Number.isSafeInteger(epoch) || epoch < 1) throw new E2EEError('malformed', 'invalid group id or epoch')
  if (members.length === 0 || members.length > MAX_MEMBERS) throw new E2EEError('malformed', `a group has 1 to ${MAX_MEMBERS} members`)
  const byId = new Map<string, CryptoKey>()
  const addrs: string[] = []
  let self = false
  for (const b of members) {
    if (byId.has(b.keyId) || addrs.includes(b.address)) throw new E2EEError('recipients_mismatch', 'a member is repeated or shares an encryption key')
    byId.set(b.keyId, b.encryptionPublic)
    addrs.push(b.address)
    self ||= b.address === from.address && b.keyId === from.keyId
  }
  if (!self) throw new E2EEError('not_member', 'the distributing member must be a member')
  addrs.sort(compareBytewise)
  const key = fixedKey ?? random(KEY_SIZE)
  const keys = new Map<string, Bytes>()
  const digests = new Map<string, Bytes>()
  for (const id of [...byId.keys()].sort(compareBytewise)) {
    const w = await oaepEncrypt(byId.get(id)!, key, LABEL.groupKey)
    keys.set(id, w)
    digests.set(id, await sha256(w))
  }
  const body = signedBody(group, epoch, from.address, addrs, createdAt, digests)
  body.signature = toB64(await from.sign(groupKeySigned(body)))
  body.keys = keysValue(keys)
  return { key: { group, epoch, from: from.address, members: addrs, createdAt, key: new Uint8Array(key) }, document: encodeBytes(body) }
}

/** A member's view: the document with only that member's wrap in `keys`. */
export function groupKeyView(doc: Uint8Array, keyId: string): Bytes {
  let v
  try {
    v = parseBytes(doc)
  } catch {
    throw new E2EEError('malformed', 'group key: not JSON')
  }
  const f = new Fields(v)
  const km = f.object('keys')
  if (f.err !== null || !Object.prototype.hasOwnProperty.call(km, keyId)) throw new E2EEError('not_recipient', 'no wrap for this key id')
  f.m.keys = obj([[keyId, km[keyId]]])
  return encodeBytes(f.m)
}

export interface GroupKeyOptions {
  /** the newest epoch the receiver holds for the group (0: none) */
  current?: number
  /** all members' pinned bundles, to check key_digests' ids exactly */
  members?: KeyBundle[]
}

/** Opens a group-key document (§12.3) with the distributor's pinned bundle. */
export async function openGroupKey(doc: Uint8Array, me: PrivateKeys, distributor: KeyBundle, opts: GroupKeyOptions = {}): Promise<GroupKey> {
  if (doc.length > MAX_GROUP_KEY_DOC) throw new E2EEError('too_large', 'group key document is larger than 512 KiB')
  let v
  try {
    v = parseBytes(doc)
  } catch (e) {
    throw new E2EEError('malformed', `group key: ${(e as Error).message}`)
  }
  const f = new Fields(v)
  const ver = f.int('v', true, 0, MAX_SAFE)
  const suite = f.str('suite')
  if (f.err === null && (ver !== VERSION || suite !== SUITE)) throw new E2EEError('unknown_suite', 'unknown group key suite or version')
  const group = f.str('group')
  const epoch = f.int('epoch', true, 1, MAX_SAFE)
  const from = f.str('from')
  const members = f.strings('members', true, validAddress)
  const createdAt = f.int('created_at', true, 0, MAX_SAFE)
  const dm = f.object('key_digests')
  const km = f.object('keys')
  const sig = f.bytes('signature', true, 64, 64)
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `group key: ${err}`)
  const keys = parseWrapMap(km, 1, MAX_MEMBERS, RSA_CIPHERTEXT_SIZE, 'keys')
  const digests = parseWrapMap(dm, 1, MAX_MEMBERS, 32, 'key_digests')
  if (!tokenRE.test(group) || !validAddress(from) || members.length === 0 || members.length > MAX_MEMBERS || !strictlyAscending(members))
    throw new E2EEError('malformed', 'group key: invalid group, from or members (sorted, unique)')
  if (from !== distributor.address) throw new E2EEError('wrong_sender', 'the distribution is not from the given member')
  if (!(await ed25519Verify(distributor.identityKey, groupKeySigned(signedBody(group, epoch, from, members, createdAt, digests)), sig)))
    throw new E2EEError('bad_signature', 'group key signature is invalid')
  if (!members.includes(from)) throw new E2EEError('not_member', 'the distributing member is not a member')
  if (!digests.has(distributor.keyId) || digests.size !== members.length)
    throw new E2EEError('recipients_mismatch', 'the key digests do not match the members')
  if (opts.members !== undefined) {
    const want = new Set(opts.members.map((b) => b.keyId))
    const got = opts.members.map((b) => b.address).sort(compareBytewise)
    if (got.join('\n') !== members.join('\n') || want.size !== digests.size || [...digests.keys()].some((id) => !want.has(id)))
      throw new E2EEError('recipients_mismatch', "the key digests do not match the members' keys")
  }
  for (const [id, w] of keys) {
    const d = digests.get(id)
    if (d === undefined || !equal(d, await sha256(w))) throw new E2EEError('wrap_mismatch', 'a wrapped key does not match its signed digest')
  }
  if (!keys.has(me.keyId) || !members.includes(me.address)) throw new E2EEError('not_recipient', 'this account is not a member of this epoch')
  if (epoch <= (opts.current ?? 0)) throw new E2EEError('stale_epoch', 'the client already holds this epoch')
  const key = await me.unwrap(keys.get(me.keyId)!, LABEL.groupKey)
  if (key === null || key.length !== KEY_SIZE) throw new E2EEError('decrypt_failed', 'cannot unwrap the group key')
  return { group, epoch, from, members, createdAt, key }
}

export async function groupSigned(aad: Uint8Array, salt: Uint8Array, nonce: Uint8Array, ct: Uint8Array): Promise<Bytes> {
  return prefixed(LABEL.groupEnvelope, await sha256(aad), await sha256(concat(salt, nonce, ct)))
}

export function messageKey(gk: GroupKey, salt: Uint8Array): Promise<Bytes> {
  return hkdf(gk.key, salt, utf8(LABEL.groupMessage), KEY_SIZE)
}

/** Seals a group message under an epoch's key (§8.2). */
export async function sealGroup(sender: PrivateKeys, gk: GroupKey, d: Omit<Draft, 'conversation'>, rnd: SealRandom = {}): Promise<Envelope> {
  if (!gk.members.includes(sender.address)) throw new E2EEError('not_member', 'the sender is not a member of this epoch')
  const ids = fileIds(d.message)
  const header: Header = {
    v: VERSION, suite: SUITE, id: d.id ?? newMessageId(), from: sender.address, group: gk.group, epoch: gk.epoch,
    conversation: gk.group, sentAt: d.sentAt,
    ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
    ...(ids.length > 0 ? { files: ids } : {}),
  }
  const aad = headerAAD(header)
  const padded = preparePlaintext(d.message)
  const salt = rnd.salt ?? random(GROUP_SALT_SIZE)
  const nonce = rnd.nonce ?? random(NONCE_SIZE)
  const mk = await messageKey(gk, salt)
  const ciphertext = await aesGcmSeal(mk, nonce, padded, aad)
  mk.fill(0)
  const signature = await sender.sign(await groupSigned(aad, salt, nonce, ciphertext))
  return { header, salt, nonce, ciphertext, signature }
}

export interface GroupOpenOptions {
  now?: number
  /** the newest epoch key the receiver holds for the group */
  latest?: GroupKey
}

/** Opens a group envelope (§12.2 from step 4 on). */
export async function openGroup(e: Envelope, gk: GroupKey, sender: KeyBundle, opts: GroupOpenOptions = {}): Promise<Message> {
  const h = e.header
  if (!isGroupHeader(h) || e.salt === undefined) throw new E2EEError('malformed', 'not a group envelope')
  const aad = headerAAD(h)
  if (h.group !== gk.group) throw new E2EEError('wrong_group', 'the envelope is for another group')
  if (h.epoch !== gk.epoch) throw new E2EEError('wrong_epoch', 'the envelope is for another epoch')
  if (h.from !== sender.address) throw new E2EEError('wrong_sender', 'the envelope is not from the given sender')
  if (!(await ed25519Verify(sender.identityKey, await groupSigned(aad, e.salt, e.nonce, e.ciphertext), e.signature)))
    throw new E2EEError('bad_signature', 'envelope signature is invalid')
  if (!gk.members.includes(h.from)) throw new E2EEError('not_member', 'the sender is not a member of this epoch')
  const l = opts.latest
  if (l !== undefined && l.group === gk.group && l.epoch > gk.epoch && h.sentAt >= l.createdAt)
    throw new E2EEError('stale_epoch', 'an old-epoch message sent after the group moved on')
  const now = opts.now ?? Date.now()
  if (h.expiresAt !== undefined && now >= h.expiresAt) throw new E2EEError('expired', 'the message has expired')
  const mk = await messageKey(gk, e.salt)
  try {
    return await openPlaintext(mk, e, aad)
  } finally {
    mk.fill(0)
  }
}

