import { describe, expect, it } from 'vitest'
import { covers, parseCosignatures, parseForks, verifyCosignature, verifyFork } from './witness'
import { verifyTreeHead } from './directory'
import { E2EEError } from './errors'
import { fromB64 } from './bytes'
import { earlierKeysFromDocument } from './keychange'

// Made by the Go implementation (keylog.Cosign, keylog.NewForkEvidence):
// a.test's directory key is Ed25519 of the all-zero seed, b.test's of the
// seed 01 00 … 00.
const cosignatures =
  '{"cosignatures":[{"signature":"jHahog+SjFitKX/S0nmcwx+Jw3WjMzYMdX+INqQR84mGhPYX3gfNAuX/eJTcHXTs+Oi91LljTDMGOorHqg1VAQ==","tree_head":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3},"witness":"b.test","witness_key":"zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw=","witnessed_at":1700000001000}],"server_key":"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=","tree_head":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3}}'
const forks =
  '{"forks":[{"detected_at":1700000002000,"first":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3},"kind":"same_size","second":{"root_hash":"IBJ4cbuYUG/LLrJqsPcmqX/QQHwDFAmKRBjjH0CrdKY=","server":"a.test","signature":"Eojmqa14t7Gwy09jOktMZX5QsOXtUNuV9gNkcNkWgA5q3m7hecs5XxVECbm5bl/NuLJmrEF2Mk4BQA1rWfJRBg==","timestamp":1700000000000,"tree_size":3},"server":"a.test","witness":"b.test"}]}'

// a.test's server document after it rotated from aKey to cKey (seed 02 00
// … 00), made by the Go implementation: signed by cKey, its statement
// aKey → cKey made at 1700000005000 (after the evidence's heads, at
// 1700000000000); the same rotated at 1699999999999 (before them); and the
// first document's members signed by the old aKey instead.
const rotatedLater =
  '{"created_at":1700000009000,"federation":"127.0.0.1:4433","key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","key_changes":[{"created_at":1700000005000,"new_key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","old_key":"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=","server":"a.test","signature":"B6NZAEy3H/O+Nx3mT/GkdpqUPJiFkOD1UKi4xbVwlLk81JPpDCpp861t1XQiCabR03P5easKodSJQi0KyCayDQ=="}],"server":"a.test","signature":"lpYHCcuJ8wIz9/k0Yx+IrHgx0EfsFE5FmBDepvgPq1JeCtOQUJpN/MEs2OrqJxTtGBBS912Q7haxUHxphWj4AQ==","v":1}'
const rotatedEarlier =
  '{"created_at":1700000009000,"federation":"127.0.0.1:4433","key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","key_changes":[{"created_at":1699999999999,"new_key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","old_key":"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=","server":"a.test","signature":"qqGu1uFXvHnJqq5OvkpKDtmixn5i3zxnueBewgkhgOlNXBrTXtBt6OWVn2QZT0+R53UzdvW5RFj5ZfI2T8N7Bw=="}],"server":"a.test","signature":"wHVZBcQ+RWM6jraC6FDjzubUAvW5zBdG0c1YXl9PXXrsbCT278XdNjPCi1pklwT3E3R7qBqcjU+SuDgpofOQAQ==","v":1}'
const signedByOld =
  '{"created_at":1700000009000,"federation":"127.0.0.1:4433","key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","key_changes":[{"created_at":1700000005000,"new_key":"a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=","old_key":"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=","server":"a.test","signature":"B6NZAEy3H/O+Nx3mT/GkdpqUPJiFkOD1UKi4xbVwlLk81JPpDCpp861t1XQiCabR03P5easKodSJQi0KyCayDQ=="}],"server":"a.test","signature":"1POKSDJLhmuSgy5+2DSkAOdkaO7YZ8Ezoo230U/BtfdlfdFHZqD72Ybl/fzn5u7rqQoKdzmpbzwVIqOMZdStDg==","v":1}'
const cKey = fromB64('a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw=')!
const aKey = fromB64('O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=')!
const bKey = fromB64('zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw=')!

describe('tree-head witnessing (§6.4 Witnesses)', () => {
  it('verifies a co-signature made by the Go implementation, and nothing altered', async () => {
    const a = parseCosignatures(cosignatures)
    await verifyTreeHead(a.head, aKey)
    const [c] = a.cosignatures
    expect(c.witness).toBe('b.test')
    expect(covers(c, a.head)).toBe(true)
    await verifyCosignature(c, bKey)
    await expect(verifyCosignature(c, aKey)).rejects.toThrow(E2EEError)
    await expect(verifyCosignature({ ...c, witnessedAt: c.witnessedAt + 1 }, bKey)).rejects.toThrow(/does not verify/)
    await expect(verifyCosignature({ ...c, witness: 'c.test' }, bKey)).rejects.toThrow(/does not verify/)
    expect(covers(c, { ...a.head, treeSize: 4 })).toBe(false)
  })

  it('verifies fork evidence under the forked server’s key only', async () => {
    const [f] = parseForks(forks)
    expect(f.kind).toBe('same_size')
    expect(f.server).toBe('a.test')
    await verifyFork(f, aKey)
    await expect(verifyFork(f, bKey)).rejects.toThrow(/signature/)
    await expect(verifyFork({ ...f, second: f.first }, aKey)).rejects.toThrow(/do not conflict/)
  })

  it('verifies fork evidence under an earlier key this client followed to its pin (a rotation since)', async () => {
    const [f] = parseForks(forks)
    // a.test now signs with bKey (say); aKey is an earlier key of it.
    await verifyFork(f, [bKey, aKey])
    await expect(verifyFork(f, [bKey])).rejects.toThrow(/signature/)
    await expect(verifyFork(f, [])).rejects.toThrow(/no key/)
  })

  it('verifies evidence made before a rotation on a device that only pinned the new key, through the earlier keys the new key names', async () => {
    const [f] = parseForks(forks)
    await expect(verifyFork(f, [cKey])).rejects.toThrow(/signature/)
    const vouched = await earlierKeysFromDocument(rotatedLater, 'a.test', cKey)
    expect(vouched).toEqual([{ key: aKey, replacedAt: 1700000005000 }])
    await verifyFork(f, [cKey], vouched)
    // Heads dated after the old key was replaced: what a thief of the old key signs after the rotation.
    await expect(verifyFork(f, [cKey], await earlierKeysFromDocument(rotatedEarlier, 'a.test', cKey))).rejects.toThrow(/dated after/)
    // A document the pinned key did not sign names nothing: one signed by the (stolen) old key,
    await expect(earlierKeysFromDocument(signedByOld, 'a.test', cKey)).rejects.toThrow(/bad_signature/)
    // one whose statements were changed after signing (a thief's key slipped in),
    const doc = JSON.parse(rotatedLater) as { key_changes: { old_key: string }[] }
    doc.key_changes[0]!.old_key = 'zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw='
    await expect(earlierKeysFromDocument(JSON.stringify(doc), 'a.test', cKey)).rejects.toThrow(E2EEError)
    // one for a client that pinned another key (the old one, say), another server's, or with a member too many.
    await expect(earlierKeysFromDocument(rotatedLater, 'a.test', aKey)).rejects.toThrow(/server_key_changed/)
    await expect(earlierKeysFromDocument(rotatedLater, 'b.test', cKey)).rejects.toThrow(/bad_proof/)
    await expect(earlierKeysFromDocument(rotatedLater.replace('"v":1', '"v":1,"x":1'), 'a.test', cKey)).rejects.toThrow(/malformed/)
    // Evidence cannot bring statements of its own.
    const withChain = JSON.parse(forks) as { forks: Record<string, unknown>[] }
    withChain.forks[0]!.key_changes = (JSON.parse(rotatedLater) as { key_changes: unknown }).key_changes
    expect(() => parseForks(JSON.stringify(withChain))).toThrow(/malformed/)
  })

  it('refuses malformed answers', () => {
    expect(() => parseCosignatures('{"cosignatures":[]}')).toThrow(E2EEError)
    expect(() => parseForks('{"forks":[{"kind":"other"}]}')).toThrow(E2EEError)
    expect(() => parseForks('{}')).toThrow(E2EEError)
  })
})
