// Byte helpers: hex, canonical base64 (§1), UTF-8, concatenation.

export type Bytes = Uint8Array<ArrayBuffer>

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

export function utf8(s: string): Bytes {
  return enc.encode(s) as Bytes
}

/** Decodes UTF-8, throwing on invalid input. */
export function fromUtf8(b: Uint8Array): string {
  return dec.decode(b)
}

export function concat(...parts: Uint8Array[]): Bytes {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function u16be(n: number): Bytes {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff])
}

export function toHex(b: Uint8Array): string {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}

export function fromHex(s: string): Bytes {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new Error('invalid hex')
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** Standard base64 with padding (RFC 4648 §4). */
export function toB64(b: Uint8Array): string {
  let s = ''
  let i = 0
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63]
  }
  if (i + 1 === b.length) {
    const n = b[i] << 16
    s += B64[n >> 18] + B64[(n >> 12) & 63] + '=='
  } else if (i + 2 === b.length) {
    const n = (b[i] << 16) | (b[i + 1] << 8)
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + '='
  }
  return s
}

/** Decodes canonical base64 only (§1): returns null for anything else. */
export function fromB64(s: string): Bytes | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0
  const n = (s.length / 4) * 3 - pad
  const out = new Uint8Array(n)
  let o = 0
  for (let i = 0; i < s.length; i += 4) {
    const v =
      (B64.indexOf(s[i]) << 18) |
      (B64.indexOf(s[i + 1]) << 12) |
      ((s[i + 2] === '=' ? 0 : B64.indexOf(s[i + 2])) << 6) |
      (s[i + 3] === '=' ? 0 : B64.indexOf(s[i + 3]))
    if (o < n) out[o++] = v >> 16
    if (o < n) out[o++] = (v >> 8) & 0xff
    if (o < n) out[o++] = v & 0xff
  }
  // Re-encode and compare: refuses non-zero pad bits.
  return toB64(out) === s ? out : null
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Compares in time independent of where the inputs differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
  return d === 0
}

/** Bytewise comparison of two strings' UTF-8 encodings. */
export function compareBytewise(a: string, b: string): number {
  const x = utf8(a)
  const y = utf8(b)
  const n = Math.min(x.length, y.length)
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i]
  return x.length - y.length
}

export function strictlyAscending(ss: readonly string[]): boolean {
  for (let i = 1; i < ss.length; i++) if (compareBytewise(ss[i - 1], ss[i]) >= 0) return false
  return true
}
