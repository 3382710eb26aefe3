/**
 * Lost epochs (spec/e2ee.md §8.1). A group's server restored from a backup
 * goes back to an older epoch and would make epoch numbers again that its
 * lost history had made, with other keys; a client keeps the first key of
 * an epoch. The engine keeps every epoch key it held (IndexedDB), so it
 * knows the highest epoch of each group it held a key of. When it sees the
 * group at a lower epoch, or is about to make the key of an epoch it held
 * a key of that is not the server's document, it reports that epoch
 * (POST /api/groups/{id}/seen_epoch) and the group moves past it. It never
 * makes a key for an epoch at or below one it held.
 */

/** What the engine knows of a held key: its epoch and the document it came in. */
export interface HeldKey {
  epoch: number
  from: string
  createdAt: number
}

/** The next step for a group at `epoch`: report an epoch, compare the server's document of the current epoch with the held one, or nothing. */
export type LostEpochStep = { report: number } | { compare: HeldKey } | null

/**
 * Decides from the held keys of a group whether the group, at `epoch`,
 * has not passed an epoch the client held a key of. `making`: the client
 * is about to make the key of `epoch` (an owner's or admin's, after a
 * membership change or for an epoch without a key).
 */
export function lostEpochStep(held: Iterable<HeldKey>, epoch: number, making: boolean): LostEpochStep {
  let top: HeldKey | undefined
  for (const k of held) if (!top || k.epoch > top.epoch) top = k
  if (!top || top.epoch < epoch) return null
  if (top.epoch > epoch) return { report: top.epoch }
  return making ? { compare: top } : null
}

/** Whether the server's key document (its public part, or undefined: none) is the held key's. */
export function sameDocument(held: HeldKey, doc: { from?: unknown; created_at?: unknown; epoch?: unknown } | undefined): boolean {
  return !!doc && doc.epoch === held.epoch && doc.from === held.from && doc.created_at === held.createdAt
}

/** Whether making the key of `epoch` would give a number the client held a key of a second key. */
export function heldAtOrAbove(held: Iterable<HeldKey>, epoch: number): boolean {
  for (const k of held) if (k.epoch >= epoch) return true
  return false
}
