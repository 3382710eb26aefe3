// The third-party vectors of spec/vectors/published, through WebCrypto.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { fromHex, toHex, utf8 } from '../src/crypto/bytes'
import { ed25519Pkcs8 } from '../src/crypto/keys'
import { ed25519Sign, ed25519Verify, hkdf, importEd25519Private, pbkdf2, subtle } from '../src/crypto/primitives'
import { digits, fingerprintHash, safetyNumber } from '../src/crypto/safety'
import { VECTORS, publishedFiles } from './vectors'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (f: string): any => JSON.parse(readFileSync(VECTORS + 'published/' + f, 'utf8'))
const done = new Map<string, number>()
const count = (f: string) => done.set(f, (done.get(f) ?? 0) + 1)
type Bytes = Uint8Array<ArrayBuffer>

describe('spec/vectors/published', () => {
  it('rfc8032_ed25519.json', async () => {
    const f = 'rfc8032_ed25519.json'
    for (const t of load(f).tests) {
      const k = await importEd25519Private(ed25519Pkcs8(fromHex(t.secret_key)), true)
      const jwk = await subtle.exportKey('jwk', k)
      expect(Buffer.from(jwk.x!, 'base64url').toString('hex'), t.name).toBe(t.public_key)
      expect(toHex(await ed25519Sign(k, fromHex(t.message))), t.name).toBe(t.signature)
      expect(await ed25519Verify(fromHex(t.public_key), fromHex(t.message), fromHex(t.signature))).toBe(true)
      count(f)
    }
  })

  it('rfc5869_hkdf_sha256.json', async () => {
    const f = 'rfc5869_hkdf_sha256.json'
    for (const t of load(f).tests) {
      expect(toHex(await hkdf(fromHex(t.ikm), fromHex(t.salt), fromHex(t.info), t.length)), t.name).toBe(t.okm)
      count(f)
    }
  })

  it('rfc7914_pbkdf2_sha256.json', async () => {
    const f = 'rfc7914_pbkdf2_sha256.json'
    for (const t of load(f).tests) {
      expect(toHex(await pbkdf2(utf8(t.password), utf8(t.salt), t.iterations, t.dk_len))).toBe(t.dk)
      count(f)
    }
  })

  it('signal_fingerprint.json', async () => {
    const f = 'signal_fingerprint.json'
    const v = load(f)
    const a = await fingerprintHash(fromHex(v.alice_identity_key), utf8(v.alice_stable_id), v.iterations)
    const b = await fingerprintHash(fromHex(v.bob_identity_key), utf8(v.bob_stable_id), v.iterations)
    expect(safetyNumber(digits(a), digits(b))).toBe(v.displayable_fingerprint)
    // CombinedFingerprints protobuf: 08 01 12 22 0a 20 <local[0:32]> 1a 22 0a 20 <remote[0:32]>
    const half = (hex: string, i: number) => hex.slice(12 + i * 72, 12 + i * 72 + 64)
    expect(half(v.alice_scannable_fingerprint_v1, 0)).toBe(toHex(a.subarray(0, 32)))
    expect(half(v.alice_scannable_fingerprint_v1, 1)).toBe(toHex(b.subarray(0, 32)))
    expect(half(v.bob_scannable_fingerprint_v1, 0)).toBe(toHex(b.subarray(0, 32)))
    count(f)
  })

  it('wycheproof_aes_gcm.json', async () => {
    const f = 'wycheproof_aes_gcm.json'
    for (const g of load(f).testGroups) {
      for (const t of g.tests) {
        const key = await subtle.importKey('raw', fromHex(t.key) as Bytes, 'AES-GCM', false, ['encrypt', 'decrypt'])
        const alg = { name: 'AES-GCM', iv: fromHex(t.iv) as Bytes, additionalData: fromHex(t.aad) as Bytes, tagLength: g.tagSize }
        const ct = fromHex(t.ct + t.tag) as Bytes
        let pt: string | null
        try {
          pt = toHex(new Uint8Array(await subtle.decrypt(alg, key, ct)))
        } catch {
          pt = null
        }
        if (t.result === 'valid') {
          expect(pt, `tcId ${t.tcId}`).toBe(t.msg)
          expect(toHex(new Uint8Array(await subtle.encrypt(alg, key, fromHex(t.msg) as Bytes)))).toBe(t.ct + t.tag)
        } else expect(pt, `tcId ${t.tcId}`).toBeNull()
        count(f)
      }
    }
  })

  it('wycheproof_rsa_oaep_4096_sha256.json', async () => {
    const f = 'wycheproof_rsa_oaep_4096_sha256.json'
    for (const g of load(f).testGroups) {
      const key = await subtle.importKey('pkcs8', fromHex(g.privateKeyPkcs8) as Bytes, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt'])
      for (const t of g.tests) {
        let pt: string | null
        try {
          pt = toHex(new Uint8Array(await subtle.decrypt({ name: 'RSA-OAEP', label: fromHex(t.label) as Bytes }, key, fromHex(t.ct) as Bytes)))
        } catch {
          pt = null
        }
        if (t.result === 'valid') expect(pt, `tcId ${t.tcId}`).toBe(t.msg)
        else expect(pt, `tcId ${t.tcId}`).toBeNull()
        count(f)
      }
    }
  })

  it('wycheproof_ed25519.json', async () => {
    const f = 'wycheproof_ed25519.json'
    const disagree: number[] = []
    for (const g of load(f).testGroups) {
      const pk = fromHex(g.publicKey.pk)
      for (const t of g.tests) {
        const ok = await ed25519Verify(pk, fromHex(t.msg), fromHex(t.sig))
        if (ok !== (t.result === 'valid')) disagree.push(t.tcId)
        count(f)
      }
    }
    expect(disagree, 'Wycheproof Ed25519 cases where WebCrypto disagrees').toEqual([])
  })

  it('checks every published file and case', () => {
    const files = publishedFiles()
    expect(files.length).toBe(7)
    for (const file of files) {
      const v = load(file)
      const n = v.testGroups ? v.testGroups.reduce((s: number, g: { tests: unknown[] }) => s + g.tests.length, 0) : v.tests ? v.tests.length : 1
      expect(done.get(file) ?? 0, file).toBe(n)
    }
    console.log(`published vectors: ${files.length} files, ${[...done.values()].reduce((a, b) => a + b, 0)} cases checked`)
  })
})
