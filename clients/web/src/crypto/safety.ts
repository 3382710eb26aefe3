// Safety numbers (§10.1) and the QR payload (§10.2).
import { E2EEError } from './errors'
import { type Bytes, concat, constantTimeEqual, fromHex, toHex, utf8 } from './bytes'
import { sha512 } from './primitives'

export const FINGERPRINT_ITERATIONS = 5200

/** The iterated hash h of one party (5,200 SHA-512 rounds). `version` is Signal's 0x0000. */
export async function fingerprintHash(identityKey: Uint8Array, id: Uint8Array, iterations = FINGERPRINT_ITERATIONS): Promise<Bytes> {
  let h = await sha512(concat(new Uint8Array([0, 0]), identityKey, id, identityKey))
  for (let i = 1; i < iterations; i++) h = await sha512(concat(h, identityKey))
  return h
}

export function partyHash(identityKey: Uint8Array, address: string): Promise<Bytes> {
  return fingerprintHash(identityKey, utf8(address))
}

/** 30 digits: six 5-byte big-endian chunks, each mod 100000. */
export function digits(h: Uint8Array): string {
  let s = ''
  for (let i = 0; i < 6; i++) {
    let n = 0n
    for (let j = 0; j < 5; j++) n = (n << 8n) | BigInt(h[5 * i + j])
    s += (n % 100000n).toString().padStart(5, '0')
  }
  return s
}

/** The 60-digit safety number of two parties, the same on both sides. */
export function safetyNumber(aDigits: string, bDigits: string): string {
  return [aDigits, bDigits].sort().join('')
}

export function displaySafetyNumber(n: string): string {
  return n.match(/.{5}/g)?.join(' ') ?? n
}

/** "PLSN1:" ‖ upper-case hex(own[0:32] ‖ peer[0:32]). */
export function qrPayload(ownHash: Uint8Array, peerHash: Uint8Array): string {
  return 'PLSN1:' + toHex(concat(ownHash.subarray(0, 32), peerHash.subarray(0, 32))).toUpperCase()
}

/** Accepts a scanned payload iff it shows the peer's hash then ours (`fingerprint_mismatch`). */
export function verifyQrPayload(payload: string, ownHash: Uint8Array, peerHash: Uint8Array): void {
  if (!payload.startsWith('PLSN1:')) {
    if (payload.startsWith('PLSN')) throw new E2EEError('unknown_suite', 'unknown safety-number QR version')
    throw new E2EEError('malformed', 'not a PrivateLine safety-number QR code')
  }
  const hex = payload.slice(6)
  if (!/^[0-9A-F]{128}$/.test(hex)) throw new E2EEError('malformed', 'QR payload must be 128 upper-case hex digits')
  const b = fromHex(hex)
  const ok1 = constantTimeEqual(b.subarray(0, 32), peerHash.subarray(0, 32))
  const ok2 = constantTimeEqual(b.subarray(32), ownHash.subarray(0, 32))
  if (!(ok1 && ok2)) throw new E2EEError('fingerprint_mismatch', 'the scanned code does not match this contact')
}
