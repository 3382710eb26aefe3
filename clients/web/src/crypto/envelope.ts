// Direct envelopes (§7) and the envelope parser shared with groups (§8.2).
import { E2EEError } from './errors'
import { type Bytes, compareBytewise, concat, toB64 } from './bytes'
import { type JSONObject, encodeBytes, obj, parseBytes } from './cjson'
import { Fields, keyIdRE } from './fields'
import { type Header, headerAAD, headerValue, isGroupHeader, parseHeader } from './header'
import {
  GROUP_SALT_SIZE, KEY_SIZE, LABEL, MAX_ENVELOPE, MAX_PLAINTEXT, MAX_RECIPIENTS, NONCE_SIZE, PAD_BLOCK,
  RSA_CIPHERTEXT_SIZE, SIGNATURE_SIZE, SUITE, VERSION, prefixed,
} from './labels'
import { type Message, decodeMessage, encodeMessage, fileIds } from './message'
import { pad, unpad } from './padding'
import type { PrivateKeys } from './account'
import type { KeyBundle } from './bundle'
import { aesGcmOpen, aesGcmSeal, ed25519Verify, importRsaPublic, oaepEncrypt, random, sha256 } from './primitives'

export interface Envelope {
  header: Header
  keys?: Map<string, Bytes> // direct form
  salt?: Bytes // group form
  nonce: Bytes
  ciphertext: Bytes
  signature: Bytes
}

export function keysValue(keys: Map<string, Uint8Array>): JSONObject {
  return obj([...keys].map(([id, w]) => [id, toB64(w)]))
}

export function envelopeJSON(e: Envelope): Bytes {
  headerAAD(e.header)
  const v = obj([
    ['header', headerValue(e.header)],
    ['nonce', toB64(e.nonce)],
    ['ciphertext', toB64(e.ciphertext)],
    ['signature', toB64(e.signature)],
  ])
  if (isGroupHeader(e.header)) v.salt = toB64(e.salt ?? new Uint8Array())
  else v.keys = keysValue(e.keys ?? new Map())
  return encodeBytes(v)
}

export function parseWrapMap(m: JSONObject, lo: number, hi: number, size: number, what: string): Map<string, Bytes> {
  const ids = Object.keys(m)
  if (ids.length < lo || ids.length > hi) throw new E2EEError('malformed', `${what} must hold ${lo} to ${hi} entries`)
  const out = new Map<string, Bytes>()
  const f = new Fields(m)
  for (const id of ids) {
    if (!keyIdRE.test(id)) throw new E2EEError('malformed', `${what} must map key ids to base64 strings`)
    const b = f.bytes(id, true, size, size)
    if (f.err !== null) throw new E2EEError('malformed', `${what}: ${f.err}`)
    out.set(id, b)
  }
  return out
}

function checkCiphertextSize(n: number) {
  if (n > MAX_PLAINTEXT + 16) throw new E2EEError('too_large', 'ciphertext is too large')
  if (n < PAD_BLOCK + 16 || (n - 16) % PAD_BLOCK !== 0) throw new E2EEError('malformed', 'ciphertext length must be a multiple of 256 plus 16')
}

/** Parses either form of envelope (§12.1 steps 1–3). */
export function parseEnvelope(data: Uint8Array | string): Envelope {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
  if (bytes.length > MAX_ENVELOPE) throw new E2EEError('too_large', 'envelope is larger than 256 KiB')
  let v
  try {
    v = parseBytes(bytes)
  } catch (e) {
    throw new E2EEError('malformed', `envelope: ${(e as Error).message}`)
  }
  const f = new Fields(v)
  const hv = f.object('header')
  if (f.err !== null) throw new E2EEError('malformed', `envelope: ${f.err}`)
  const header = parseHeader(hv)
  const e: Envelope = {
    header,
    nonce: f.bytes('nonce', true, NONCE_SIZE, NONCE_SIZE),
    ciphertext: f.bytes('ciphertext', true, 0, MAX_ENVELOPE),
    signature: f.bytes('signature', true, SIGNATURE_SIZE, SIGNATURE_SIZE),
  }
  if (isGroupHeader(header)) e.salt = f.bytes('salt', true, GROUP_SALT_SIZE, GROUP_SALT_SIZE)
  else {
    const km = f.object('keys')
    if (f.err === null) e.keys = parseWrapMap(km, 1, MAX_RECIPIENTS + 1, RSA_CIPHERTEXT_SIZE, 'keys')
  }
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `envelope: ${err}`)
  checkCiphertextSize(e.ciphertext.length)
  return e
}

export async function directSigned(aad: Uint8Array, nonce: Uint8Array, ct: Uint8Array, keys: Map<string, Uint8Array>): Promise<Bytes> {
  return prefixed(LABEL.envelope, await sha256(aad), await sha256(concat(nonce, ct)), await sha256(encodeBytes(keysValue(keys))))
}

export interface Draft {
  id?: string
  conversation: string
  sentAt: number
  expiresAt?: number
  message: Message
}

export function newMessageId(): string {
  return [...random(16)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

/** Optional fixed randomness, for test vectors only. */
export interface SealRandom {
  contentKey?: Uint8Array
  nonce?: Uint8Array
  salt?: Uint8Array
}

export function preparePlaintext(m: Message): Bytes {
  const padded = pad(encodeMessage(m))
  if (padded.length > MAX_PLAINTEXT) throw new E2EEError('too_large', 'message is too large')
  return padded
}

/** Seals a direct message to the recipients' (pinned, verified) bundles (§7.3). */
export async function sealDirect(sender: PrivateKeys, recipients: KeyBundle[], d: Draft, rnd: SealRandom = {}): Promise<Envelope> {
  const pubs = new Map<string, CryptoKey | null>([[sender.keyId, null]])
  const to: string[] = []
  for (const b of recipients) {
    if (pubs.has(b.keyId)) throw new E2EEError('recipients_mismatch', 'two participants share an encryption key')
    pubs.set(b.keyId, b.encryptionPublic)
    to.push(b.address)
  }
  to.sort(compareBytewise)
  const ids = fileIds(d.message)
  const header: Header = {
    v: VERSION, suite: SUITE, id: d.id ?? newMessageId(), from: sender.address, to,
    conversation: d.conversation, sentAt: d.sentAt,
    ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
    ...(ids.length > 0 ? { files: ids } : {}),
  }
  const aad = headerAAD(header)
  const padded = preparePlaintext(d.message)
  const ck = rnd.contentKey ?? random(KEY_SIZE)
  const nonce = rnd.nonce ?? random(NONCE_SIZE)
  const ciphertext = await aesGcmSeal(ck, nonce, padded, aad)
  const keys = new Map<string, Bytes>()
  const ownPub = await importOwnPublic(sender)
  for (const id of [...pubs.keys()].sort(compareBytewise)) keys.set(id, await oaepEncrypt(pubs.get(id) ?? ownPub, ck, LABEL.contentKey))
  const signature = await sender.sign(await directSigned(aad, nonce, ciphertext, keys))
  return { header, keys, nonce, ciphertext, signature }
}

function importOwnPublic(k: PrivateKeys): Promise<CryptoKey> {
  return importRsaPublic(k.spki)
}

export interface OpenOptions {
  /** the opener's clock, ms; absent: Date.now() */
  now?: number
  /** every recipient's pinned bundle, to check keys' ids exactly */
  recipients?: KeyBundle[]
}

/** Opens a direct envelope with the sender's pinned bundle (§12.1 from step 3 on). */
export async function openDirect(e: Envelope, me: PrivateKeys, sender: KeyBundle, opts: OpenOptions = {}): Promise<Message> {
  const h = e.header
  if (isGroupHeader(h) || e.keys === undefined) throw new E2EEError('malformed', 'not a direct envelope')
  const aad = headerAAD(h)
  if (h.from !== sender.address) throw new E2EEError('wrong_sender', 'the envelope is not from the given sender')
  if (!(await ed25519Verify(sender.identityKey, await directSigned(aad, e.nonce, e.ciphertext, e.keys), e.signature)))
    throw new E2EEError('bad_signature', 'envelope signature is invalid')
  const to = h.to ?? []
  if (me.address !== h.from && !to.includes(me.address)) throw new E2EEError('not_recipient', 'this account is not a recipient')
  if (!e.keys.has(me.keyId)) throw new E2EEError('not_recipient', "no key is wrapped to this account's encryption key")
  if (!e.keys.has(sender.keyId) || e.keys.size !== to.length + 1)
    throw new E2EEError('recipients_mismatch', 'the wrapped keys do not match the recipient list')
  if (opts.recipients !== undefined) {
    const want = new Set([sender.keyId, ...opts.recipients.map((b) => b.keyId)])
    const addrs = opts.recipients.map((b) => b.address).sort(compareBytewise)
    if (addrs.join('\n') !== to.join('\n') || want.size !== e.keys.size || [...e.keys.keys()].some((id) => !want.has(id)))
      throw new E2EEError('recipients_mismatch', "the wrapped keys do not match the recipients' keys")
  }
  const now = opts.now ?? Date.now()
  if (h.expiresAt !== undefined && now >= h.expiresAt) throw new E2EEError('expired', 'the message has expired')
  const ck = await me.unwrap(e.keys.get(me.keyId)!, LABEL.contentKey)
  if (ck === null || ck.length !== KEY_SIZE) throw new E2EEError('decrypt_failed', 'cannot unwrap the content key')
  try {
    return await openPlaintext(ck, e, aad)
  } finally {
    ck.fill(0)
  }
}

/** AES-GCM, unpadding, plaintext checks and the files check (§12.1 steps 8–11). */
export async function openPlaintext(key: Uint8Array, e: Envelope, aad: Uint8Array): Promise<Message> {
  const pt = await aesGcmOpen(key, e.nonce, e.ciphertext, aad)
  if (pt === null) throw new E2EEError('decrypt_failed', 'the message does not decrypt')
  const m = decodeMessage(unpad(pt))
  const ids = fileIds(m)
  const files = e.header.files ?? []
  if (ids.length !== files.length || ids.some((id, i) => id !== files[i]))
    throw new E2EEError('files_mismatch', "the header's files differ from the attachments")
  return m
}

