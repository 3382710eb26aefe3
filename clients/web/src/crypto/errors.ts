// Refusal codes of spec/e2ee.md §12, wire-stable and equal to the Go SDK's
// e2ee.Reason values.
export type ErrorCode =
  | 'malformed' | 'non_canonical' | 'unknown_suite' | 'too_large' | 'bad_key'
  | 'wrong_sender' | 'bad_signature' | 'not_recipient' | 'recipients_mismatch'
  | 'key_changed' | 'wrong_group' | 'wrong_epoch' | 'stale_epoch' | 'not_member'
  | 'wrap_mismatch' | 'expired' | 'decrypt_failed' | 'bad_padding' | 'files_mismatch'
  | 'hash_mismatch' | 'fingerprint_mismatch' | 'weak_kdf' | 'unwrap_failed'
  | 'stale_bundle' | 'bad_proof' | 'log_fork' | 'log_rollback' | 'server_key_changed'

export type ErrorKind = 'Invalid' | 'TooLarge' | 'Forbidden' | 'NotExist' | 'Unauthenticated'

const kinds: Record<ErrorCode, ErrorKind> = {
  malformed: 'Invalid', non_canonical: 'Invalid', unknown_suite: 'Invalid', too_large: 'TooLarge',
  bad_key: 'Invalid', wrong_sender: 'Forbidden', bad_signature: 'Forbidden', not_recipient: 'Forbidden',
  recipients_mismatch: 'Forbidden', key_changed: 'Forbidden', wrong_group: 'Forbidden',
  wrong_epoch: 'Forbidden', stale_epoch: 'Forbidden', not_member: 'Forbidden', wrap_mismatch: 'Forbidden',
  expired: 'NotExist', decrypt_failed: 'Forbidden', bad_padding: 'Invalid', files_mismatch: 'Invalid',
  hash_mismatch: 'Forbidden', fingerprint_mismatch: 'Forbidden', weak_kdf: 'Invalid',
  unwrap_failed: 'Unauthenticated', stale_bundle: 'Forbidden', bad_proof: 'Forbidden',
  log_fork: 'Forbidden', log_rollback: 'Forbidden', server_key_changed: 'Forbidden',
}

/** A refusal of the protocol: `code` is the spec's wire code. */
export class E2EEError extends Error {
  readonly code: ErrorCode
  readonly kind: ErrorKind
  constructor(code: ErrorCode, message: string) {
    super(`${code}: ${message}`)
    this.name = 'E2EEError'
    this.code = code
    this.kind = kinds[code]
  }
}

export function refuse(code: ErrorCode, message: string): never {
  throw new E2EEError(code, message)
}
