// Human sentences for every failure the engine reports to the screens.
import { ApiError } from '../api/client'
import { AccountError } from '../api/account'
import { E2EEError } from '../crypto/errors'

/** An error whose message is for people (the screens show `message`). */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: string = 'refused',
  ) {
    super(message)
    this.name = 'EngineError'
  }
}

const e2eeText: Partial<Record<string, string>> = {
  key_changed: "The contact's safety number changed. Verify it before trusting new messages.",
  bad_signature: 'The signature does not check out: it may have been tampered with.',
  bad_proof: "The server's key directory gave an answer that does not check out.",
  log_fork: "The server's key directory changed its history. Do not trust new keys from it until this is explained.",
  log_rollback: "The server's key directory went back in time. Do not trust new keys from it until this is explained.",
  server_key_changed: "The server's key directory answered under another key than before. Do not trust new keys from it until this is explained.",
  decrypt_failed: 'It could not be decrypted.',
  not_recipient: 'It was not encrypted for this account.',
  not_member: 'It comes from someone who is not a member.',
  stale_epoch: 'It was encrypted with an outdated group key.',
  hash_mismatch: 'The file does not match what the sender sent: it may have been tampered with.',
  fingerprint_mismatch: 'The scanned code does not match any of your contacts.',
  unknown_suite: 'It uses a version of the protocol this app does not know.',
  too_large: 'That is too large to send.',
  expired: 'It has expired.',
  weak_kdf: 'The server asked for a weak password protection; this app refuses it.',
  unwrap_failed: 'Wrong password.',
}

/** The human sentence for any error. */
export function human(e: unknown): string {
  if (e instanceof EngineError || e instanceof ApiError || e instanceof AccountError) return e.message
  if (e instanceof E2EEError) return e2eeText[e.code] ?? 'The message or key is damaged or not in the expected form.'
  if (e instanceof DOMException && e.name === 'QuotaExceededError') return 'This device is out of storage space.'
  return 'Something went wrong. Try again.'
}

/** An EngineError carrying the human sentence of e (kept as `cause`). */
export function asHuman(e: unknown): Error {
  if (e instanceof EngineError || e instanceof ApiError || e instanceof AccountError) return e
  const err = new EngineError(human(e), e instanceof E2EEError ? e.code : 'refused')
  ;(err as Error & { cause?: unknown }).cause = e
  return err
}

/** Whether a failed request may succeed later as it is (network, 5xx, 429). */
export function retryable(e: unknown): boolean {
  if (!(e instanceof ApiError)) return false
  return e.code === 'network' || e.status === 429 || e.status >= 500
}

/**
 * A file of a message from another homeserver stays there until a
 * recipient first opens it; then this user's server fetches it
 * (spec/federation.md §12.4). When the sender's server cannot be reached
 * now, trying again later can help (the screens offer Retry).
 */
export function remoteFileUnreachable(sender: string): EngineError {
  const server = sender.slice(sender.lastIndexOf('@') + 1)
  return new EngineError(
    `It is on ${server}, the sender's server, which cannot be reached right now. Try again later.`,
    'origin_unreachable',
  )
}

/**
 * A file of a message from another homeserver that its server no longer
 * has for this user (the message was deleted there). Code `remote_file`:
 * asking again does not help, so the screens offer no Retry.
 */
export function remoteFileGone(sender: string): EngineError {
  const server = sender.slice(sender.lastIndexOf('@') + 1)
  return new EngineError(`It is no longer available: ${sender} may have deleted the message on ${server}.`, 'remote_file')
}
