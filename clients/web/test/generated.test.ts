// Every case of every file in spec/vectors/*.json (spec/e2ee.md §15).
import { describe, expect, it } from 'vitest'
import { fromB64, fromHex, toB64, toHex, utf8 } from '../src/crypto/bytes'
import { encodeBytes, isCanonical, parseBytes } from '../src/crypto/cjson'
import { checkKdf, deriveMaster, keysFromMaster } from '../src/crypto/kdf'
import { aesGcmSeal, aesKey, ed25519Verify, importEd25519Private, subtle } from '../src/crypto/primitives'
import { privateKeysAAD, privateKeysPlaintext, unwrapPrivateKeys, wrapPrivateKeys } from '../src/crypto/account'
import { bundleSigningInput, checkPinned, keyChangeInput, parseKeyBundle, verifyKeyChange } from '../src/crypto/bundle'
import { ed25519Pkcs8, keyId } from '../src/crypto/keys'
import { pad, unpad } from '../src/crypto/padding'
import { directSigned, envelopeJSON, openDirect, parseEnvelope, sealDirect } from '../src/crypto/envelope'
import { decodeMessage } from '../src/crypto/message'
import { type GroupKey, groupKeySigned, groupKeyView, groupSigned, messageKey, openGroup, openGroupKey, sealGroup } from '../src/crypto/group'
import { openAttachment, sealAttachment } from '../src/crypto/attachment'
import { digits, partyHash, qrPayload, safetyNumber, verifyQrPayload } from '../src/crypto/safety'
import {
  acceptLookup, type ServerState, deleteCommitmentFromDigest, entrySigned, hashLeaf, keyCommitment, parseConsistency, parseLeaf, parseLookup, parseTreeHead,
  treeHeadSigned, verifyLookup, verifyTreeHead,
} from '../src/crypto/directory'
import { verifyConsistency } from '../src/crypto/merkle'
import { type Pins, decodePins, encodePins, mergePins, openPins, sealPins } from '../src/crypto/pinned'
import { headerAAD } from '../src/crypto/header'
import { checked, count, expectRefusal, generatedFiles, load } from './vectors'
import { parties } from './parties'

const te = (s: string) => utf8(s)

/** Proves a non-extractable kek equals kek_hex: both seal the same bytes alike. */
async function sameAesKey(k: CryptoKey, hex: string) {
  const n = new Uint8Array(12)
  const p = utf8('kek check')
  expect(toHex(await aesGcmSeal(k, n, p, new Uint8Array()))).toBe(toHex(await aesGcmSeal(fromHex(hex), n, p, new Uint8Array())))
}

async function publicFromSeed(seed: Uint8Array): Promise<Uint8Array> {
  const k = await importEd25519Private(ed25519Pkcs8(seed), true)
  const jwk = await subtle.exportKey('jwk', k)
  return fromB64(jwk.x!.replace(/-/g, '+').replace(/_/g, '/') + '=')!
}

describe('spec/vectors', () => {
  it('canonical_json.json', () => {
    const f = 'canonical_json.json'
    for (const c of load(f).cases) {
      const input = fromHex(c.input_hex)
      expect(new TextDecoder().decode(input)).toBe(c.input)
      expect(isCanonical(input), c.name).toBe(c.is_canonical)
      if (c.result === 'valid') {
        const out = encodeBytes(parseBytes(input))
        expect(toHex(out), c.name).toBe(c.canonical_hex)
      } else {
        expect(() => parseBytes(input), c.name).toThrow()
      }
      count(f)
    }
  })

  it('kdf.json', async () => {
    const f = 'kdf.json'
    for (const c of load(f).cases) {
      const params = { kdf: c.kdf, iterations: c.iterations, salt: fromHex(c.salt_hex) }
      if (c.result === 'invalid') {
        await expectRefusal(() => checkKdf(params), c.error, c.name)
        await expectRefusal(deriveMaster(c.password, params), c.error, c.name)
      } else {
        expect(toHex(utf8(c.password))).toBe(c.password_hex)
        expect(toHex(utf8(c.password.normalize('NFC')))).toBe(c.normalized_hex)
        const master = await deriveMaster(c.password, params)
        expect(toHex(master), c.name).toBe(c.master_hex)
        const { authKey, kek } = await keysFromMaster(master)
        expect(toHex(authKey)).toBe(c.auth_key_hex)
        expect(toB64(authKey)).toBe(c.auth_key_b64)
        expect(kek.extractable).toBe(false)
        await sameAesKey(kek, c.kek_hex)
      }
      count(f)
    }
  })

  it('parties.json', async () => {
    const f = 'parties.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      const p = ps.get(c.name)!
      expect(c.identity_pkcs8_hex).toBe(toHex(ed25519Pkcs8(fromHex(c.identity_seed_hex))))
      expect(toHex(p.keys.identityPublic)).toBe(c.identity_public_hex)
      expect(toB64(p.keys.spki)).toBe(c.encryption_spki_b64)
      expect(await keyId(fromB64(c.encryption_spki_b64)!)).toBe(c.key_id)
      expect(p.keys.keyId).toBe(c.key_id)
      expect(p.bundle.keyId).toBe(c.key_id)
      expect(new TextDecoder().decode(p.bundle.json)).toBe(c.key_bundle)
      expect(p.keys.identity.key.extractable).toBe(false)
      expect(p.keys.encryption.key.extractable).toBe(false)
      count(f)
    }
  })

  it('keywrap.json', async () => {
    const f = 'keywrap.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      const kek = await aesKey(fromHex(c.kek_hex))
      const nonce = fromHex(c.nonce_hex)
      const enc = fromB64(c.encrypted_private_key_b64)!
      if (c.result === 'valid') {
        const { authKey: _a, kek: derived } = await keysFromMaster(await deriveMaster(c.password, { kdf: 'pbkdf2-sha256', iterations: 600000, salt: fromHex(c.salt_hex) }))
        await sameAesKey(derived, c.kek_hex)
        expect(toB64(fromHex(c.salt_hex))).toBe(c.salt_b64)
        expect(toB64(nonce)).toBe(c.nonce_b64)
        expect(toHex(privateKeysAAD(c.address))).toBe(c.aad_hex)
        const p = ps.get(c.party)!
        const pt = privateKeysPlaintext(fromHex(p.raw.identity_pkcs8_hex), fromB64(p.raw.encryption_pkcs8_b64)!)
        expect(toHex(pt)).toBe(c.plaintext_hex)
        const w = await wrapPrivateKeys(derived, c.address, fromHex(p.raw.identity_pkcs8_hex), fromB64(p.raw.encryption_pkcs8_b64)!, nonce)
        expect(toB64(w.encryptedPrivateKey), c.name).toBe(c.encrypted_private_key_b64)
        const u = await unwrapPrivateKeys(derived, c.address, nonce, enc)
        expect(u.keys.keyId).toBe(p.keys.keyId)
        expect(toHex(u.keys.identityPublic)).toBe(toHex(p.keys.identityPublic))
        expect(u.keys.identity.key.extractable).toBe(false)
        expect(u.keys.encryption.key.extractable).toBe(false)
      } else {
        await expectRefusal(unwrapPrivateKeys(kek, c.address, nonce, enc), c.error, c.name)
      }
      count(f)
    }
  })

  it('keybundle.json', async () => {
    const f = 'keybundle.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      const data = te(c.bundle)
      if (c.result === 'valid') {
        const b = await parseKeyBundle(data)
        const p = ps.get(c.party)!
        expect(toHex(bundleSigningInput(b.address, b.createdAt, b.encryptionKey, b.identityKey))).toBe(c.signed_hex)
        expect(toB64(await p.keys.sign(fromHex(c.signed_hex)))).toBe(toB64(b.signature))
        expect(new TextDecoder().decode(b.json)).toBe(c.bundle)
      } else if (c.error === 'key_changed') {
        const b = await parseKeyBundle(data)
        await expectRefusal(() => checkPinned(fromHex(c.pinned_identity_hex), b), c.error, c.name)
      } else {
        await expectRefusal(parseKeyBundle(data), c.error, c.name)
      }
      count(f)
    }
  })

  it('padding.json', async () => {
    const f = 'padding.json'
    for (const c of load(f).cases) {
      if (c.result === 'valid') {
        expect(toHex(pad(fromHex(c.plaintext_hex))), c.name).toBe(c.padded_hex)
        expect(toHex(unpad(fromHex(c.padded_hex)))).toBe(c.plaintext_hex)
      } else await expectRefusal(() => unpad(fromHex(c.padded_hex)), c.error, c.name)
      count(f)
    }
  })

  it('envelope.json', async () => {
    const f = 'envelope.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      if (c.result === 'valid') {
        const sender = ps.get(c.sender)!
        const e = parseEnvelope(c.envelope)
        expect(new TextDecoder().decode(headerAAD(e.header))).toBe(c.aad)
        expect(new TextDecoder().decode(envelopeJSON(e))).toBe(c.envelope)
        expect(toHex(await directSigned(headerAAD(e.header), e.nonce, e.ciphertext, e.keys!))).toBe(c.signed_hex)
        expect(new TextDecoder().decode(encodeBytes(Object.fromEntries([...e.keys!].map(([k, v]) => [k, toB64(v)]))))).toBe(c.canonical_keys)
        // Reproduce: ciphertext from key and nonce, signature from signed bytes.
        const msg = decodeMessage(utf8(c.plaintext))
        expect(toHex(pad(utf8(c.plaintext)))).toBe(c.padded_plaintext_hex)
        const ct = await aesGcmSeal(fromHex(c.content_key_hex), fromHex(c.nonce_hex), fromHex(c.padded_plaintext_hex), utf8(c.aad))
        expect(toHex(ct)).toBe(c.ciphertext_hex)
        expect(toHex(await sender.keys.sign(fromHex(c.signed_hex)))).toBe(c.signature_hex)
        for (const name of c.openers) {
          const o = ps.get(name)!
          const m = await openDirect(e, o.keys, sender.bundle, { now: c.sent_at_ms })
          expect(m).toEqual(msg)
          // OAEP is randomized: check the wrap by unwrapping.
          const ck = await o.keys.unwrap(e.keys!.get(o.keys.keyId)!, 'privateline/v1/content-key')
          expect(toHex(ck!)).toBe(c.content_key_hex)
          if (m.attachments.length > 0) {
            const a = m.attachments[0]
            expect(toHex(await openAttachment(fromHex(c.attachment_blob_hex), a))).not.toBe('')
          }
        }
        // Sealing anew with the same key and nonce gives the same ciphertext and opens.
        const recips = c.recipients.map((r: string) => ps.get(r)!.bundle)
        const again = await sealDirect(sender.keys, recips, {
          id: c.id, conversation: c.conversation, sentAt: c.sent_at_ms, expiresAt: c.expires_at_ms, message: msg,
        }, { contentKey: fromHex(c.content_key_hex), nonce: fromHex(c.nonce_hex) })
        expect(toHex(again.ciphertext)).toBe(c.ciphertext_hex)
        const back = parseEnvelope(envelopeJSON(again))
        expect(await openDirect(back, ps.get(c.recipients[0])!.keys, sender.bundle, { now: c.sent_at_ms, recipients: recips })).toEqual(msg)
      } else {
        const sender = ps.get(c.sender)!
        const opener = ps.get(c.opener)!
        await expectRefusal(
          (async () => openDirect(parseEnvelope(c.envelope), opener.keys, sender.bundle, { now: c.now_ms ?? 1767312000000 }))(),
          c.error, c.name,
        )
      }
      count(f)
    }
  })

  const groupKeys = new Map<number, GroupKey>()

  it('groupkey.json', async () => {
    const f = 'groupkey.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      const doc = te(c.document)
      const dist = ps.get(c.distributor)!
      if (c.result === 'valid') {
        if (c.signed_hex !== undefined) {
          const signedPart = Object.fromEntries(Object.entries(parseBytes(doc) as object).filter(([k]) => k !== 'keys' && k !== 'signature'))
          expect(toHex(groupKeySigned(signedPart as never))).toBe(c.signed_hex)
        }
        for (const name of c.openers) {
          const o = ps.get(name)!
          const members = c.members.map((m: string) => ps.get(m)!.bundle)
          const gk = await openGroupKey(doc, o.keys, dist.bundle, { members })
          expect(toHex(gk.key), `${c.name} ${name}`).toBe(c.group_key_hex)
          expect(gk.epoch).toBe(c.epoch)
          expect(gk.createdAt).toBe(c.created_at_ms)
          expect(gk.members).toEqual(c.members.map((m: string) => ps.get(m)!.address).sort())
          // A member's view holds only its wrap and still verifies.
          const view = groupKeyView(doc, o.keys.keyId)
          expect(Object.keys((parseBytes(view) as { keys: object }).keys)).toEqual([o.keys.keyId])
          expect(toHex((await openGroupKey(view, o.keys, dist.bundle)).key)).toBe(c.group_key_hex)
          groupKeys.set(c.epoch, gk)
        }
      } else {
        const o = ps.get(c.opener)!
        await expectRefusal(openGroupKey(doc, o.keys, dist.bundle, { current: c.current_epoch }), c.error, c.name)
      }
      count(f)
    }
  })

  it('groupmessage.json', async () => {
    const f = 'groupmessage.json'
    const ps = await parties()
    const gks = load('groupkey.json').cases.filter((c) => c.result === 'valid' && c.name.match(/^epoch-\d+$/))
    const keyOf = (epoch: number, hex: string): GroupKey => {
      const g = gks.find((c) => c.epoch === epoch)!
      return { group: g.group, epoch, from: ps.get(g.distributor)!.address, members: g.members.map((m: string) => ps.get(m)!.address).sort(), createdAt: g.created_at_ms, key: fromHex(hex) }
    }
    for (const c of load(f).cases) {
      const sender = ps.get(c.sender)!
      if (c.result === 'valid' && c.openers) {
        const gk = keyOf(c.epoch, c.group_key_hex)
        const e = parseEnvelope(c.envelope)
        expect(new TextDecoder().decode(envelopeJSON(e))).toBe(c.envelope)
        const aad = headerAAD(e.header)
        expect(new TextDecoder().decode(aad)).toBe(c.aad)
        expect(toHex(await messageKey(gk, fromHex(c.salt_hex)))).toBe(c.message_key_hex)
        expect(toHex(await aesGcmSeal(fromHex(c.message_key_hex), fromHex(c.nonce_hex), fromHex(c.padded_plaintext_hex), aad))).toBe(c.ciphertext_hex)
        expect(toHex(await groupSigned(aad, e.salt!, e.nonce, e.ciphertext))).toBe(c.signed_hex)
        expect(toHex(await sender.keys.sign(fromHex(c.signed_hex)))).toBe(c.signature_hex)
        const msg = decodeMessage(utf8(c.plaintext))
        for (const name of c.openers) {
          expect(await openGroup(e, gk, sender.bundle, { now: c.sent_at_ms }), `${c.name} ${name}`).toEqual(msg)
        }
        const again = await sealGroup(sender.keys, gk, { id: c.id, sentAt: c.sent_at_ms, message: msg }, { salt: fromHex(c.salt_hex), nonce: fromHex(c.nonce_hex) })
        expect(new TextDecoder().decode(envelopeJSON(again))).toBe(c.envelope)
      } else {
        const gk = keyOf(c.key_epoch, c.group_key_hex)
        const latest = c.latest_epoch ? keyOf(c.latest_epoch, gks.find((g) => g.epoch === c.latest_epoch)!.group_key_hex) : undefined
        const run = async () => openGroup(parseEnvelope(c.envelope), gk, sender.bundle, { now: 1767312000000, latest })
        if (c.result === 'valid') expect((await run()).type).toBe('text')
        else await expectRefusal(run(), c.error, c.name)
      }
      count(f)
    }
  })

  it('attachment.json', async () => {
    const f = 'attachment.json'
    for (const c of load(f).cases) {
      const ref = { key: fromHex(c.key_hex), sha256: fromHex(c.sha256_hex), size: c.size }
      if (c.result === 'valid') {
        const s = await sealAttachment(fromHex(c.data_hex), { key: fromHex(c.key_hex), nonce: fromHex(c.nonce_hex) })
        expect(toHex(s.blob), c.name).toBe(c.blob_hex)
        expect(toHex(s.sha256)).toBe(c.sha256_hex)
        expect(c.aad).toBe('privateline/v1/attachment')
        expect(toHex(await openAttachment(fromHex(c.blob_hex), ref))).toBe(c.data_hex)
      } else await expectRefusal(openAttachment(fromHex(c.blob_hex), ref), c.error, c.name)
      count(f)
    }
  })

  it('safetynumber.json', async () => {
    const f = 'safetynumber.json'
    const ps = await parties()
    for (const c of load(f).cases) {
      const a = ps.get(c.a)!
      const b = ps.get(c.b)!
      const ha = await partyHash(a.keys.identityPublic, a.address)
      const hb = await partyHash(b.keys.identityPublic, b.address)
      expect(toHex(ha)).toBe(c.a_hash_hex)
      expect(toHex(hb)).toBe(c.b_hash_hex)
      expect(digits(ha)).toBe(c.a_digits)
      expect(digits(hb)).toBe(c.b_digits)
      expect(safetyNumber(digits(ha), digits(hb))).toBe(c.safety_number)
      expect(safetyNumber(digits(hb), digits(ha))).toBe(c.safety_number)
      count(f)
    }
  })

  it('qr.json', async () => {
    const f = 'qr.json'
    const ps = await parties()
    const hashes = new Map<string, Uint8Array>()
    for (const [n, p] of ps) hashes.set(n, await partyHash(p.keys.identityPublic, p.address))
    for (const c of load(f).cases) {
      const own = hashes.get(c.scanner)!
      const peer = hashes.get(c.peer_of_scanner)!
      if (c.result === 'valid') {
        expect(qrPayload(hashes.get(c.shower)!, fromHex(c.peer_hex))).toBe(c.payload)
        expect(toHex(hashes.get(c.shower)!.subarray(0, 32))).toBe(c.own_hex)
        expect(c.payload.length).toBe(134)
        verifyQrPayload(c.payload, own, peer)
      } else await expectRefusal(() => verifyQrPayload(c.payload, own, peer), c.error, c.name)
      count(f)
    }
  })

  it('directory.json', async () => {
    const f = 'directory.json'
    const cases = load(f).cases
    const sk = cases.find((c) => c.kind === 'server_key')!
    const serverKey = fromB64(sk.server_key_b64)!
    const heads = new Map<number, Uint8Array>()
    for (const c of cases.filter((c) => c.kind === 'tree_head')) {
      const h = parseTreeHead(parseBytes(te(c.tree_head)))
      heads.set(h.treeSize, h.rootHash)
    }
    for (const c of cases) {
      switch (c.kind) {
        case 'server_key':
          expect(toB64(await publicFromSeed(fromHex(c.server_seed_hex)))).toBe(c.server_key_b64)
          break
        case 'key_change': {
          const old = await parseKeyBundle(te(c.old_bundle))
          const next = await parseKeyBundle(te(c.new_bundle))
          const sig = fromB64(c.old_key_signature_b64)!
          if (c.result === 'valid') {
            expect(toHex(await keyChangeInput(old, next))).toBe(c.signed_hex)
            await verifyKeyChange(old, next, sig)
            expect(toHex(await publicFromSeed(fromHex(c.identity_seed_hex)))).toBe(toHex(next.identityKey))
          } else await expectRefusal(verifyKeyChange(old, next, sig), c.error, c.name)
          break
        }
        case 'leaf': {
          const leaf = parseLeaf(parseBytes(te(c.leaf)))
          const salt = fromB64(c.salt_b64)!
          const commitment = c.bundle
            ? await keyCommitment(salt, (await parseKeyBundle(te(c.bundle))).json)
            : await deleteCommitmentFromDigest(salt, c.address, fromHex(c.last_bundle_sha256_hex))
          expect(toB64(commitment), c.name).toBe(c.commitment_b64)
          expect(toB64(leaf.commitment)).toBe(c.commitment_b64)
          expect(toHex(await hashLeaf(leaf))).toBe(c.leaf_hash_hex)
          expect(toHex(entrySigned(leaf))).toBe(c.signed_hex)
          expect(await ed25519Verify(serverKey, entrySigned(leaf), fromB64(c.signature_b64)!)).toBe(true)
          break
        }
        case 'tree_head': {
          const h = parseTreeHead(parseBytes(te(c.tree_head)))
          expect(toB64(h.rootHash)).toBe(c.root_hash_b64)
          expect(toHex(treeHeadSigned(h))).toBe(c.signed_hex)
          await verifyTreeHead(h, serverKey)
          break
        }
        case 'consistency': {
          const p = parseConsistency(c.consistency)
          expect(await verifyConsistency(p.from, p.to, heads.get(p.from)!, heads.get(p.to)!, p.proof), c.name).toBe(true)
          expect(await verifyConsistency(p.from, p.to, heads.get(p.to)!, heads.get(p.to)!, p.proof)).toBe(false)
          break
        }
        case 'lookup': {
          const run = async () => verifyLookup(await parseLookup(c.lookup), serverKey, 'example.org', c.address)
          if (c.result === 'valid') await run()
          else await expectRefusal(run(), c.error, c.name)
          break
        }
        default:
          throw new Error(`unknown directory case kind ${c.kind}`)
      }
      count(f)
    }
  })

  it('a lookup asked with ?since= carries the consistency proof the client uses (spec/e2ee.md §6.4)', async () => {
    const cases = load('directory.json').cases
    const byName = (n: string) => cases.find((c) => c.name === n)!
    const head2 = parseTreeHead(parseBytes(te(byName('tree-head-2').tree_head)))
    const proof = JSON.parse(byName('consistency-2-4').consistency).proof as string[]
    const answer = (p: string[]) => JSON.stringify({ ...JSON.parse(byName('lookup-alice-after-change').lookup), consistency: p })
    const address = byName('lookup-alice-after-change').address
    const noFetch = async (): Promise<never> => {
      throw new Error('the proof in the answer should have been used')
    }
    const state: ServerState = { serverKey: fromB64(cases.find((c) => c.kind === 'server_key')!.server_key_b64)!, lastHead: head2 }
    await acceptLookup(await parseLookup(answer(proof), 2), 'example.org', address, state, noFetch)
    expect(state.lastHead!.treeSize).toBe(4)

    const tampered = [...proof]
    tampered[0] = toB64(new Uint8Array(32))
    const fresh: ServerState = { serverKey: state.serverKey, lastHead: head2 }
    await expectRefusal(acceptLookup(await parseLookup(answer(tampered), 2), 'example.org', address, fresh, noFetch), 'log_fork', 'tampered proof')
    expect(fresh.lastHead!.treeSize).toBe(2)
    // An answer to ?since= without its proof is malformed.
    await expectRefusal(parseLookup(byName('lookup-alice-after-change').lookup, 2), 'malformed', 'no consistency')
  })

  it('pinned.json', async () => {
    const f = 'pinned.json'
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const pinsOf = (v: Record<string, any>): Pins =>
      new Map(
        Object.entries(v).map(([a, p]) => [
          a,
          p.verified
            ? { identityKey: fromHex(p.identity_key_hex), firstSeen: p.first_seen_ms, verified: true, verifiedAt: p.verified_at_ms }
            : { identityKey: fromHex(p.identity_key_hex), firstSeen: p.first_seen_ms, verified: false },
        ]),
      )
    for (const c of load(f).cases) {
      switch (c.op) {
        case 'seal': {
          const kek = await aesKey(fromHex(c.kek_hex))
          const pins = pinsOf(c.pins)
          expect(toHex(encodePins(pins)), c.name).toBe(c.plaintext_hex)
          const blob = await sealPins(kek, c.account, pins, fromHex(c.nonce_hex))
          expect(toB64(blob), c.name).toBe(c.blob_b64)
          expect(toHex(encodePins(await openPins(kek, c.account, blob))), c.name).toBe(c.plaintext_hex)
          break
        }
        case 'open':
          await expectRefusal(openPins(await aesKey(fromHex(c.kek_hex)), c.account, fromB64(c.blob_b64)!), c.error, c.name)
          break
        case 'decode':
          await expectRefusal(() => decodePins(fromHex(c.plaintext_hex)), c.error, c.name)
          break
        case 'merge': {
          const a = pinsOf(c.a)
          const b = pinsOf(c.b)
          expect(toHex(encodePins(mergePins(a, b))), c.name).toBe(c.merged_plaintext_hex)
          expect(toHex(encodePins(mergePins(b, a))), c.name).toBe(c.merged_plaintext_hex)
          expect(toHex(encodePins(pinsOf(c.merged))), c.name).toBe(c.merged_plaintext_hex)
          break
        }
        default:
          throw new Error(`unknown pinned case op ${c.op}`)
      }
      count(f)
    }
  })

  it('checks every case of every generated file', () => {
    const files = generatedFiles()
    expect(files.length).toBeGreaterThanOrEqual(14)
    for (const file of files) expect(checked.get(file) ?? 0, file).toBe(load(file).cases.length)
    const total = files.reduce((n, f) => n + load(f).cases.length, 0)
    console.log(`generated vectors: ${files.length} files, ${total} cases checked`)
  })
})

