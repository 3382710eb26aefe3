import { describe, expect, it } from 'vitest'
import { type Pin, type Pins, decodePins, encodePins, mergePins, openPins, sealPins } from './pinned'
import { E2EEError } from './errors'
import { utf8 } from './bytes'
import { aesGcmSeal, random, subtle } from './primitives'
import { pad } from './padding'
import { LABEL, prefixed } from './labels'

const kek = () => subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']) as Promise<CryptoKey>
const key = (n: number) => new Uint8Array(32).fill(n)
const pin = (n: number, firstSeen: number, verifiedAt?: number): Pin =>
  verifiedAt === undefined ? { identityKey: key(n), firstSeen, verified: false } : { identityKey: key(n), firstSeen, verified: true, verifiedAt }

async function code(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    expect(e).toBeInstanceOf(E2EEError)
    return (e as E2EEError).code
  }
  throw new Error('no error')
}

describe('pinned-keys blob (§18)', () => {
  it('seals and opens a round trip, padded to 256-byte blocks', async () => {
    const k = await kek()
    const pins: Pins = new Map([
      ['bob@example.org', pin(2, 1000)],
      ['carol@example.org', pin(3, 2000, 3000)],
    ])
    const blob = await sealPins(k, 'alice@example.org', pins)
    expect((blob.length - 12 - 16) % 256).toBe(0)
    expect(await openPins(k, 'alice@example.org', blob)).toEqual(pins)
    expect(await openPins(k, 'alice@example.org', new Uint8Array(0))).toEqual(new Map())
    expect(await openPins(k, 'alice@example.org', await sealPins(k, 'alice@example.org', new Map()))).toEqual(new Map())
  })

  it('has the canonical plaintext of §18.1', () => {
    const text = new TextDecoder().decode(encodePins(new Map([['bob@example.org', pin(1, 5, 6)], ['amy@example.org', pin(2, 7)]])))
    expect(text).toBe(
      '{"pins":{"amy@example.org":{"first_seen":7,"identity_key":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=","verified":false},' +
        '"bob@example.org":{"first_seen":5,"identity_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","verified":true,"verified_at":6}},"v":1}',
    )
  })

  it("refuses another account's blob, another kek, and a changed blob (decrypt_failed)", async () => {
    const k = await kek()
    const blob = await sealPins(k, 'alice@example.org', new Map([['bob@example.org', pin(2, 1)]]))
    expect(await code(openPins(k, 'mallory@example.org', blob))).toBe('decrypt_failed')
    expect(await code(openPins(await kek(), 'alice@example.org', blob))).toBe('decrypt_failed')
    const t = blob.slice()
    t[20] ^= 1
    expect(await code(openPins(k, 'alice@example.org', t))).toBe('decrypt_failed')
    expect(await code(openPins(k, 'alice@example.org', blob.slice(0, 100)))).toBe('malformed')
  })

  it('refuses bad plaintexts in the order of §18.1–18.2', async () => {
    const k = await kek()
    const seal = async (pt: Uint8Array, padded = true) => {
      const nonce = random(12)
      const ct = await aesGcmSeal(k, nonce, padded ? pad(pt) : pt, prefixed(LABEL.pinnedKeys, utf8('alice@example.org')))
      return openPins(k, 'alice@example.org', new Uint8Array([...nonce, ...ct]))
    }
    expect(await code(seal(new Uint8Array(256), false))).toBe('bad_padding')
    expect(await code(seal(utf8('{"pins":{},"v":2}')))).toBe('unknown_suite')
    expect(await code(seal(utf8('{"v":1,"pins":{}}')))).toBe('non_canonical')
    expect(await code(seal(utf8('{"pins":{},"v":1,"x":1}')))).toBe('malformed')
    expect(await code(seal(utf8('{"pins":{"Bob":{}},"v":1}')))).toBe('malformed')
    const k32 = '"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="'
    expect(await code(seal(utf8(`{"pins":{"bob@example.org":{"first_seen":1,"identity_key":${k32},"verified":false,"verified_at":2}},"v":1}`)))).toBe('malformed')
    expect(await code(seal(utf8(`{"pins":{"bob@example.org":{"first_seen":1,"identity_key":${k32},"verified":true}},"v":1}`)))).toBe('malformed')
    expect(await code(seal(utf8(`{"pins":{"bob@example.org":{"first_seen":1,"identity_key":${k32},"verified":false,"x":0}},"v":1}`)))).toBe('malformed')
    expect(decodePins(utf8(`{"pins":{"bob@example.org":{"first_seen":1,"identity_key":${k32},"verified":false}},"v":1}`)).get('bob@example.org')).toEqual(pin(1, 1))
    expect(await code(() => encodePins(new Map([['bob@example.org', { identityKey: key(1), firstSeen: 1, verified: true }]])))).toBe('malformed')
  })

  it('merges as §18.3 says, whatever the order of the arguments', () => {
    const cases: [Pin, Pin, Pin][] = [
      // same key: earlier first_seen, verified if either, later verified_at
      [pin(1, 10), pin(1, 5), pin(1, 5)],
      [pin(1, 10, 20), pin(1, 5), pin(1, 5, 20)],
      [pin(1, 10, 20), pin(1, 5, 30), pin(1, 5, 30)],
      // different keys: later first_seen, then verified, then larger key
      [pin(1, 10), pin(2, 5, 6), pin(1, 10)],
      [pin(1, 10), pin(2, 10, 11), pin(2, 10, 11)],
      [pin(1, 10), pin(2, 10), pin(2, 10)],
    ]
    for (const [a, b, want] of cases) {
      const x = new Map([['bob@example.org', a]])
      const y = new Map([['bob@example.org', b]])
      expect(mergePins(x, y).get('bob@example.org')).toEqual(want)
      expect(mergePins(y, x).get('bob@example.org')).toEqual(want)
    }
    const m = mergePins(new Map([['a@x.org', pin(1, 1)]]), new Map([['b@x.org', pin(2, 2)]]))
    expect([...m.keys()].sort()).toEqual(['a@x.org', 'b@x.org'])
  })
})
