// Fresh keys end to end: generate, wrap under a password, unwrap, bundle,
// seal and open direct and group messages, and the refusals around them.
import { describe, expect, it } from 'vitest'
import { generateKeys, unwrapPrivateKeys, wrapPrivateKeys } from '../src/crypto/account'
import { keysFromMaster } from '../src/crypto/kdf'
import { keysMatch, makeKeyBundle } from '../src/crypto/bundle'
import { envelopeJSON, openDirect, parseEnvelope, sealDirect } from '../src/crypto/envelope'
import { groupKeyView, openGroup, openGroupKey, sealGroup, sealGroupKey } from '../src/crypto/group'
import { random } from '../src/crypto/primitives'
import { expectRefusal } from './vectors'

describe('round trip with generated keys', () => {
  it('registers, logs in, messages and groups', async () => {
    const a = await generateKeys('dora@example.org')
    const b = await generateKeys('eve@example.org')
    expect(a.ed25519Pkcs8.length).toBe(48)
    expect(a.keys.identity.key.extractable).toBe(false)
    expect(a.keys.encryption.key.extractable).toBe(false)
    const { kek } = await keysFromMaster(random(32))
    const w = await wrapPrivateKeys(kek, 'dora@example.org', a.ed25519Pkcs8, a.rsaPkcs8)
    const u = await unwrapPrivateKeys(kek, 'dora@example.org', w.nonce, w.encryptedPrivateKey)
    const ab = await makeKeyBundle(u.keys, 1767225600000)
    const bb = await makeKeyBundle(b.keys, 1767225600000)
    expect(keysMatch(a.keys, ab)).toBe(true)
    await expectRefusal(unwrapPrivateKeys((await keysFromMaster(random(32))).kek, 'dora@example.org', w.nonce, w.encryptedPrivateKey), 'unwrap_failed', 'wrong kek')

    const message = { type: 'text', body: 'hi', attachments: [] }
    const e = await sealDirect(u.keys, [bb], { conversation: 'dm.1', sentAt: 1000, expiresAt: 5000, message })
    const wire = parseEnvelope(envelopeJSON(e))
    expect(await openDirect(wire, b.keys, ab, { now: 2000 })).toEqual(message)
    expect(await openDirect(wire, u.keys, ab, { now: 2000 })).toEqual(message)
    await expectRefusal(openDirect(wire, b.keys, ab, { now: 5000 }), 'expired', 'expired')
    await expectRefusal(openDirect(wire, b.keys, bb, { now: 2000 }), 'wrong_sender', 'wrong sender')

    const { key, document } = await sealGroupKey(u.keys, 'g.x', 1, 3000, [ab, bb])
    const view = groupKeyView(document, b.keys.keyId)
    const gk = await openGroupKey(view, b.keys, ab)
    expect(gk.key).toEqual(key.key)
    await expectRefusal(openGroupKey(view, b.keys, ab, { current: 1 }), 'stale_epoch', 'stale')
    await expectRefusal(openGroupKey(view, u.keys, ab), 'not_recipient', "another member's view")
    const ge = parseEnvelope(envelopeJSON(await sealGroup(b.keys, gk, { sentAt: 4000, message })))
    expect(await openGroup(ge, key, bb, { now: 4500 })).toEqual(message)
  })
})
