import { describe, expect, it } from 'vitest'
import { heldAtOrAbove, lostEpochStep, sameDocument, type HeldKey } from './lostepochs'

const k = (epoch: number, from = 'ann@a.example', createdAt = 1000 + epoch): HeldKey => ({ epoch, from, createdAt })

describe('lost epochs (spec/e2ee.md §8.1)', () => {
  it('reports the highest held epoch when the group is behind it (its server was restored)', () => {
    expect(lostEpochStep([k(1), k(3), k(2)], 1, false)).toEqual({ report: 3 })
    expect(lostEpochStep([k(1), k(3), k(2)], 2, true)).toEqual({ report: 3 })
  })

  it('reports nothing for a group at or past every held epoch, unless about to make the held one', () => {
    expect(lostEpochStep([], 1, true)).toBeNull()
    expect(lostEpochStep([k(1), k(2)], 3, true)).toBeNull()
    expect(lostEpochStep([k(1), k(2)], 2, false)).toBeNull()
    expect(lostEpochStep([k(1), k(2)], 2, true)).toEqual({ compare: k(2) })
  })

  it("compares the server's document of the epoch with the held key's", () => {
    const held = k(2)
    expect(sameDocument(held, { epoch: 2, from: 'ann@a.example', created_at: 1002 })).toBe(true)
    expect(sameDocument(held, undefined)).toBe(false) // lost: the server holds none
    expect(sameDocument(held, { epoch: 2, from: 'bob@a.example', created_at: 1002 })).toBe(false)
    expect(sameDocument(held, { epoch: 2, from: 'ann@a.example', created_at: 1003 })).toBe(false)
    expect(sameDocument(held, { epoch: 3, from: 'ann@a.example', created_at: 1002 })).toBe(false)
  })

  it('never lets a held number get a second key', () => {
    expect(heldAtOrAbove([k(1), k(3)], 3)).toBe(true)
    expect(heldAtOrAbove([k(1), k(3)], 2)).toBe(true)
    expect(heldAtOrAbove([k(1), k(3)], 4)).toBe(false)
  })
})
