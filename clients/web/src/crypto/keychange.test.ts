import { describe, expect, it } from 'vitest'
import { type ServerState, acceptLookup, parseLookup } from './directory'
import { acceptServerKey, parseKeyChanges } from './keychange'
import { fromB64 } from './bytes'
import { Fields } from './fields'
import { fixtures as F } from './keychange.fixtures'

const k1 = fromB64(F.k1)!
const k2 = fromB64(F.k2)!
const k3 = fromB64(F.k3)!
const server = 'example.org'
const alice = 'alice@example.org'
const noFetch = () => Promise.reject(new Error('no consistency proof should be fetched'))

/** A client state that verified alice's entry under k1 (tree of 1). */
async function pinnedAtK1(): Promise<ServerState> {
  const state: ServerState = {}
  await acceptLookup(await parseLookup(F.lookup1), server, alice, state, noFetch)
  expect(state.serverKey).toEqual(k1)
  return state
}

async function refused(name: 'lookup2_nochain' | 'lookup3_gap' | 'lookup2_label' | 'lookup2_other_server'): Promise<ServerState> {
  const state = await pinnedAtK1()
  const before = { ...state }
  await expect(acceptLookup(await parseLookup(F[name], 1), server, alice, state, noFetch)).rejects.toMatchObject({ code: 'server_key_changed' })
  expect(state).toEqual(before) // the pin and the last head stay
  return state
}

describe('server key rotation (spec/e2ee.md §6.4 step 2)', () => {
  it('follows a valid chain from the pinned key and pins the new key', async () => {
    const state = await pinnedAtK1()
    const b = await acceptLookup(await parseLookup(F.lookup2, 1), server, alice, state, noFetch)
    expect(b.address).toBe(alice)
    expect(state.serverKey).toEqual(k2)
    expect(state.earlier).toEqual([k1])
    expect(state.lastHead?.treeSize).toBe(2)
    // pinned now: the same answer without the chain verifies
    await acceptLookup(await parseLookup(F.lookup2_nochain, 1), server, alice, state, noFetch)
  })

  it('follows two rotations', async () => {
    const state = await pinnedAtK1()
    await acceptLookup(await parseLookup(F.lookup3, 1), server, alice, state, noFetch)
    expect(state.serverKey).toEqual(k3)
    // the keys followed are kept: fork evidence they signed stays the server's
    expect(state.earlier).toEqual([k1, k2])
  })

  it('refuses another key without a chain', () => refused('lookup2_nochain'))
  it('refuses a chain that does not start at the pinned key', () => refused('lookup3_gap'))
  it('refuses a statement signed under another label', () => refused('lookup2_label'))
  it('refuses a statement for another server', () => refused('lookup2_other_server'))

  it('refuses a chain whose statement signature is wrong, or altered', async () => {
    const s = JSON.parse(F.lookup2) as { key_changes: { signature: string; created_at: number }[] }
    const sig = fromB64(s.key_changes[0]!.signature)!
    sig[3]! ^= 1
    const bad = { ...s, key_changes: [{ ...s.key_changes[0]!, signature: btoa(String.fromCharCode(...sig)) }] }
    const later = { ...s, key_changes: [{ ...s.key_changes[0]!, created_at: s.key_changes[0]!.created_at + 1 }] }
    for (const v of [bad, later]) {
      const state = await pinnedAtK1()
      await expect(acceptLookup(await parseLookup(JSON.stringify(v), 1), server, alice, state, noFetch)).rejects.toMatchObject({ code: 'server_key_changed' })
      expect(state.serverKey).toEqual(k1)
    }
  })

  it('keeps the pin when the answer carries a valid chain but is not signed by the new key', async () => {
    const state = await pinnedAtK1()
    // the chain leads to k2, but the answer names (and is signed by) k1: not the offered key's chain → same key, plain check
    await acceptLookup(await parseLookup(F.lookup2_by_old, 1), server, alice, state, noFetch)
    expect(state.serverKey).toEqual(k1)
    // a k2 answer whose head is signed by k1 is refused and pins nothing
    const s = JSON.parse(F.lookup2) as { tree_head: { signature: string } }
    const old = JSON.parse(F.lookup2_by_old) as { tree_head: { signature: string } }
    const forged = { ...s, tree_head: { ...s.tree_head, signature: old.tree_head.signature } }
    await expect(acceptLookup(await parseLookup(JSON.stringify(forged), 2), server, alice, state, noFetch)).rejects.toMatchObject({ code: 'bad_signature' })
    expect(state.serverKey).toEqual(k1)
  })

  it('acceptServerKey: pinned, first contact, and the chain rules', async () => {
    const changes = parseKeyChanges(new Fields(JSON.parse(F.lookup3)))
    expect(changes).toHaveLength(2)
    await acceptServerKey(server, undefined, k3, [])
    await acceptServerKey(server, k1, k1, [])
    await acceptServerKey(server, k1, k3, changes)
    await acceptServerKey(server, k2, k3, changes) // a pin of the middle key follows the rest
    await expect(acceptServerKey(server, k3, k1, changes)).rejects.toMatchObject({ code: 'server_key_changed' }) // not backwards
    await expect(acceptServerKey('other.example', k1, k3, changes)).rejects.toMatchObject({ code: 'server_key_changed' })
  })

  it('refuses malformed key_changes members', () => {
    for (const v of [{ key_changes: [] }, { key_changes: {} }, { key_changes: [{ old_key: 'x' }] }]) {
      expect(() => {
        const f = new Fields(v)
        parseKeyChanges(f)
        const err = f.done(false)
        if (err !== null) throw new Error(err)
      }).toThrow()
    }
    expect(parseKeyChanges(new Fields({}))).toEqual([])
  })
})
