// Labels of spec/e2ee.md §3.
import { type Bytes, concat, utf8 } from './bytes'

export const LABEL = {
  auth: 'privateline/v1/auth',
  keyWrap: 'privateline/v1/key-wrap',
  privateKeys: 'privateline/v1/private-keys',
  keyBundle: 'privateline/v1/key-bundle',
  envelope: 'privateline/v1/envelope',
  contentKey: 'privateline/v1/content-key',
  groupKey: 'privateline/v1/group-key',
  groupEnvelope: 'privateline/v1/group-envelope',
  groupMessage: 'privateline/v1/group-message',
  attachment: 'privateline/v1/attachment',
  pinnedKeys: 'privateline/v1/pinned-keys',
  keyChange: 'privateline/v1/key-change',
  directoryKey: 'privateline/v1/directory-key',
  directoryDelete: 'privateline/v1/directory-delete',
  directoryEntry: 'privateline/v1/directory-entry',
  treeHead: 'privateline/v1/tree-head',
} as const

/** A prefix label: UTF-8(label) ‖ 0x00 ‖ parts. */
export function prefixed(label: string, ...parts: Uint8Array[]): Bytes {
  return concat(utf8(label), new Uint8Array([0]), ...parts)
}

export const SUITE = 'pl1'
export const VERSION = 1
export const KEY_SIZE = 32
export const NONCE_SIZE = 12
export const SIGNATURE_SIZE = 64
export const GROUP_SALT_SIZE = 32
export const RSA_BITS = 4096
export const RSA_CIPHERTEXT_SIZE = 512
export const PAD_BLOCK = 256
export const MAX_PLAINTEXT = 65536
export const MAX_ENVELOPE = 256 * 1024
export const MAX_GROUP_KEY_DOC = 512 * 1024
export const MAX_BUNDLE = 16 * 1024
export const MAX_PRIVATE_KEY_BLOB = 16 * 1024
export const MAX_RECIPIENTS = 64
export const MAX_MEMBERS = 512
export const MAX_ATTACHMENTS = 32
export const MAX_ATTACHMENT = 100 * 1024 * 1024
export const MIN_ITERATIONS = 600_000
export const MAX_ITERATIONS = 60_000_000
