import { describe, expect, it } from 'vitest'
import { covers, parseCosignatures, parseForks, verifyCosignature, verifyFork } from './witness'
import { verifyTreeHead } from './directory'
import { E2EEError } from './errors'
import { fromB64 } from './bytes'

// Made by the Go implementation (keylog.Cosign, keylog.NewForkEvidence):
// a.test's directory key is Ed25519 of the all-zero seed, b.test's of the
// seed 01 00 … 00.
const cosignatures =
  '{"cosignatures":[{"signature":"jHahog+SjFitKX/S0nmcwx+Jw3WjMzYMdX+INqQR84mGhPYX3gfNAuX/eJTcHXTs+Oi91LljTDMGOorHqg1VAQ==","tree_head":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3},"witness":"b.test","witness_key":"zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw=","witnessed_at":1700000001000}],"server_key":"O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=","tree_head":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3}}'
const forks =
  '{"forks":[{"detected_at":1700000002000,"first":{"root_hash":"8a7QaeG3nF8SGT5xUFnEaO/xVZpcmJxtfEa8KfT4T2w=","server":"a.test","signature":"zdWyi9+gS4qApm8g9ftOPI6tUgJBExpbAVQ4t1wOylHYpUOKr7XSkMQ11pEtb+sXMG3PiJQCFci5GNeYsTLFDw==","timestamp":1700000000000,"tree_size":3},"kind":"same_size","second":{"root_hash":"IBJ4cbuYUG/LLrJqsPcmqX/QQHwDFAmKRBjjH0CrdKY=","server":"a.test","signature":"Eojmqa14t7Gwy09jOktMZX5QsOXtUNuV9gNkcNkWgA5q3m7hecs5XxVECbm5bl/NuLJmrEF2Mk4BQA1rWfJRBg==","timestamp":1700000000000,"tree_size":3},"server":"a.test","witness":"b.test"}]}'
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

  it('refuses malformed answers', () => {
    expect(() => parseCosignatures('{"cosignatures":[]}')).toThrow(E2EEError)
    expect(() => parseForks('{"forks":[{"kind":"other"}]}')).toThrow(E2EEError)
    expect(() => parseForks('{}')).toThrow(E2EEError)
  })
})
