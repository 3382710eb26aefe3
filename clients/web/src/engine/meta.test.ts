import { describe, expect, it } from 'vitest'
import type { GroupKey } from '../crypto/group'
import { random } from '../crypto/primitives'
import { metaEpoch, openMeta, sealMeta } from './meta'

const gk = (group: string, epoch: number, key = random(32)): GroupKey => ({ group, epoch, from: 'a@x.org', members: ['a@x.org'], createdAt: 1, key })

describe('group meta (spec/e2ee.md §19)', () => {
  it('round-trips a name and says its epoch', async () => {
    const k = gk('g1@x.org', 7)
    const blob = await sealMeta(k, { name: 'Climbing 🧗 club' })
    expect(metaEpoch(blob)).toBe(7)
    expect(blob.length).toBe(1 + 8 + 12 + 256 + 16)
    expect(await openMeta(k, blob)).toEqual({ name: 'Climbing 🧗 club' })
  })

  it('refuses another group, another epoch, another key and a changed byte', async () => {
    const k = gk('g1@x.org', 2)
    const blob = await sealMeta(k, { name: 'n' })
    await expect(openMeta({ ...k, group: 'g2@x.org' }, blob)).rejects.toThrow(/decrypt_failed/)
    await expect(openMeta({ ...k, epoch: 3 }, blob)).rejects.toThrow(/wrong_epoch/)
    await expect(openMeta(gk('g1@x.org', 2), blob)).rejects.toThrow(/decrypt_failed/)
    const relabelled = blob.slice()
    relabelled[8] = 3 // claims epoch 3
    await expect(openMeta({ ...k, epoch: 3 }, relabelled)).rejects.toThrow(/decrypt_failed/)
    const flipped = blob.slice()
    flipped[40] ^= 1
    await expect(openMeta(k, flipped)).rejects.toThrow(/decrypt_failed/)
    expect(() => metaEpoch(blob.subarray(0, 100))).toThrow(/malformed/)
  })

  it('refuses a name over 256 bytes', async () => {
    await expect(sealMeta(gk('g@x.org', 1), { name: 'é'.repeat(129) })).rejects.toThrow(/too_large/)
  })
})
