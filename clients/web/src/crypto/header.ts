// The cleartext routing header (§7.1, group form §8.2).
import { E2EEError } from './errors'
import { type Bytes, strictlyAscending } from './bytes'
import { type JSONObject, type JSONValue, encodeBytes, obj } from './cjson'
import { Fields, MAX_SAFE, messageIdRE, tokenRE, validAddress } from './fields'
import { MAX_ATTACHMENTS, MAX_RECIPIENTS, SUITE, VERSION } from './labels'

export interface Header {
  v: number
  suite: string
  id: string
  from: string
  to?: string[] // direct form
  group?: string // group form
  epoch?: number // group form
  conversation: string
  sentAt: number
  expiresAt?: number
  files?: string[]
}

export function isGroupHeader(h: Header): boolean {
  return h.group !== undefined
}

/** Checks the header's rules: unknown_suite, malformed, non_canonical. */
export function checkHeader(h: Header): void {
  const bad = (m: string): never => {
    throw new E2EEError('malformed', `header: ${m}`)
  }
  if (h.v !== VERSION || h.suite !== SUITE) throw new E2EEError('unknown_suite', `header: unknown suite ${JSON.stringify(h.suite)} or version ${h.v}`)
  if (!messageIdRE.test(h.id)) bad('id must be 32 lower-case hex digits')
  if (!validAddress(h.from)) bad('from is not a valid address')
  if (!tokenRE.test(h.conversation)) bad('conversation is not a valid id')
  if (!Number.isSafeInteger(h.sentAt) || h.sentAt < 0) bad('sent_at out of range')
  if (h.expiresAt !== undefined && (!Number.isSafeInteger(h.expiresAt) || h.expiresAt <= h.sentAt)) bad('expires_at must be after sent_at')
  if (h.files !== undefined) {
    if (h.files.length > MAX_ATTACHMENTS) bad('files must hold at most 32 ids')
    if (h.files.length === 0 || !strictlyAscending(h.files))
      throw new E2EEError('non_canonical', 'header: files must be sorted bytewise without repeats, and absent when empty')
    for (const f of h.files) if (!tokenRE.test(f)) bad('files holds an invalid file id')
  }
  if (h.group !== undefined) {
    if (!tokenRE.test(h.group)) bad('group is not a valid id')
    if (h.epoch === undefined || !Number.isSafeInteger(h.epoch) || h.epoch < 1) bad('epoch must be a positive integer')
    if (h.conversation !== h.group) bad('conversation must equal group')
    if (h.to !== undefined) bad('a group header has no to')
    return
  }
  if (h.epoch !== undefined) bad('a direct header has no epoch')
  const to = h.to ?? []
  if (to.length === 0 || to.length > MAX_RECIPIENTS) bad(`to must list 1 to ${MAX_RECIPIENTS} recipients`)
  for (const a of to) {
    if (!validAddress(a)) bad('to holds an invalid address')
    if (a === h.from) bad('to must not contain from')
  }
  if (!strictlyAscending(to)) throw new E2EEError('non_canonical', 'header: to must be sorted bytewise without repeats')
}

export function headerValue(h: Header): JSONObject {
  const v = obj([
    ['v', h.v],
    ['suite', h.suite],
    ['id', h.id],
    ['from', h.from],
    ['conversation', h.conversation],
    ['sent_at', h.sentAt],
  ])
  if (h.group !== undefined) {
    v.group = h.group
    v.epoch = h.epoch ?? 0
  } else v.to = [...(h.to ?? [])]
  if (h.expiresAt !== undefined) v.expires_at = h.expiresAt
  if (h.files !== undefined) v.files = [...h.files]
  return v
}

/** aad = canonical JSON of the (checked) header. */
export function headerAAD(h: Header): Bytes {
  checkHeader(h)
  return encodeBytes(headerValue(h))
}

export function parseHeader(v: JSONValue): Header {
  const f = new Fields(v)
  const h: Header = {
    v: f.int('v', true, 0, MAX_SAFE),
    suite: f.str('suite'),
    id: f.str('id'),
    from: f.str('from'),
    conversation: f.str('conversation'),
    sentAt: f.int('sent_at', true, 0, MAX_SAFE),
  }
  if (f.err === null && (h.v !== VERSION || h.suite !== SUITE))
    throw new E2EEError('unknown_suite', `header: unknown suite ${JSON.stringify(h.suite)} or version ${h.v}`)
  if (f.has('expires_at')) h.expiresAt = f.int('expires_at', true, 1, MAX_SAFE)
  if (f.has('files')) {
    h.files = f.strings('files', true, (s) => tokenRE.test(s))
    if (f.err === null && h.files.length === 0) throw new E2EEError('non_canonical', 'header: "files" must be absent when empty')
  }
  if (f.has('group')) {
    h.group = f.str('group')
    h.epoch = f.int('epoch', true, 1, MAX_SAFE)
  } else h.to = f.strings('to', true, validAddress)
  const err = f.done(false)
  if (err !== null) throw new E2EEError('malformed', `header: ${err}`)
  checkHeader(h)
  return h
}
