// Message plaintext (§7.4) and attachment references (§9).
import { E2EEError } from './errors'
import { type Bytes, compareBytewise, toB64, utf8 } from './bytes'
import { type JSONObject, type JSONValue, encodeBytes, obj, parseCanonical } from './cjson'
import { Fields, messageIdRE, tokenRE, typeRE } from './fields'
import { MAX_ATTACHMENT, MAX_ATTACHMENTS } from './labels'

export interface AttachmentRef {
  fileId: string
  key: Bytes
  mime: string
  name: string
  sha256: Bytes
  size: number
}

export interface Message {
  type: string
  body: string
  attachments: AttachmentRef[]
  replyTo?: string
}

export function validMime(s: string): boolean {
  if (s.length === 0 || s.length > 127 || !s.includes('/')) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) return false
  }
  return true
}

function checkMessage(m: Message): string | null {
  if (!typeRE.test(m.type)) return 'invalid message type'
  if (m.attachments.length > MAX_ATTACHMENTS) return 'too many attachments'
  const seen = new Set<string>()
  for (const a of m.attachments) {
    if (!tokenRE.test(a.fileId)) return 'invalid attachment file id'
    if (utf8(a.name).length > 255) return 'attachment name longer than 255 bytes'
    if (!validMime(a.mime)) return 'invalid attachment MIME type'
    if (!Number.isSafeInteger(a.size) || a.size < 0 || a.size > MAX_ATTACHMENT) return 'attachment size out of range'
    if (a.key.length !== 32 || a.sha256.length !== 32) return 'attachment key or digest has the wrong size'
    if (seen.has(a.fileId)) return 'attachment file id repeated'
    seen.add(a.fileId)
  }
  if (m.replyTo !== undefined && !messageIdRE.test(m.replyTo)) return 'reply_to must be a message id'
  return null
}

export function encodeMessage(m: Message): Bytes {
  const err = checkMessage(m)
  if (err !== null) throw new E2EEError('malformed', err)
  const v: JSONObject = obj([
    ['type', m.type],
    ['body', m.body],
    [
      'attachments',
      m.attachments.map((a) =>
        obj([
          ['file_id', a.fileId],
          ['key', toB64(a.key)],
          ['mime', a.mime],
          ['name', a.name],
          ['sha256', toB64(a.sha256)],
          ['size', a.size],
        ]),
      ),
    ],
  ])
  if (m.replyTo !== undefined) v.reply_to = m.replyTo
  try {
    return encodeBytes(v)
  } catch (e) {
    throw new E2EEError('malformed', (e as Error).message)
  }
}

/** Decodes a plaintext: `malformed` / `non_canonical`; unknown members are ignored. */
export function decodeMessage(pt: Uint8Array): Message {
  const v = parseCanonical(pt, 'plaintext')
  const f = new Fields(v)
  const m: Message = { type: f.str('type'), body: f.str('body'), attachments: [] }
  const reply = f.str('reply_to', false)
  const hasReply = f.has('reply_to')
  const atts = f.array('attachments')
  const err = f.done(true)
  if (err !== null) throw new E2EEError('malformed', `plaintext: ${err}`)
  if (hasReply) m.replyTo = reply
  for (const av of atts as JSONValue[]) {
    const af = new Fields(av)
    const a: AttachmentRef = {
      fileId: af.str('file_id'),
      key: af.bytes('key', true, 32, 32),
      mime: af.str('mime'),
      name: af.str('name'),
      sha256: af.bytes('sha256', true, 32, 32),
      size: af.int('size', true, 0, MAX_ATTACHMENT),
    }
    const aerr = af.done(true)
    if (aerr !== null) throw new E2EEError('malformed', `plaintext attachment: ${aerr}`)
    m.attachments.push(a)
  }
  const cerr = checkMessage(m)
  if (cerr !== null) throw new E2EEError('malformed', `plaintext: ${cerr}`)
  return m
}

export function fileIds(m: Message): string[] {
  return m.attachments.map((a) => a.fileId).sort(compareBytewise)
}
