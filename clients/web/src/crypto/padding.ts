// ISO/IEC 7816-4 padding to 256-byte blocks (§7.5).
import { E2EEError } from './errors'
import { PAD_BLOCK } from './labels'
import type { Bytes } from './bytes'

export function pad(p: Uint8Array): Bytes {
  const out = new Uint8Array((Math.floor(p.length / PAD_BLOCK) + 1) * PAD_BLOCK)
  out.set(p)
  out[p.length] = 0x80
  return out
}

export function unpad(p: Uint8Array): Bytes {
  if (p.length === 0 || p.length % PAD_BLOCK !== 0) throw new E2EEError('bad_padding', 'padded length is not a multiple of 256')
  let i = p.length - 1
  while (i >= 0 && p[i] === 0 && p.length - 1 - i < PAD_BLOCK) i--
  if (i < 0 || p[i] !== 0x80 || p.length - i > PAD_BLOCK) throw new E2EEError('bad_padding', 'invalid padding')
  return p.slice(0, i)
}
