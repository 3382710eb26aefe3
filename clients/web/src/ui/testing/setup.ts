// Test-only: what jsdom lacks for the screens, and Testing Library's cleanup.
import '@testing-library/jest-dom/vitest'
import { afterEach } from 'vitest'
import { cleanup, configure } from '@testing-library/react'

// The machine is shared and slow: wait longer for a condition (never a fixed sleep).
configure({ asyncUtilTimeout: 5000 })

afterEach(() => {
  cleanup()
  localStorage.clear()
})

if (typeof window.matchMedia !== 'function') {
  window.matchMedia = (query: string) => ({
    matches: false, media: query, onchange: null,
    addListener: () => {}, removeListener: () => {}, addEventListener: () => {}, removeEventListener: () => {},
    dispatchEvent: () => false,
  }) as MediaQueryList
}
const objectUrls = new Map<string, Blob>()
let urlSeq = 0
URL.createObjectURL = (b: Blob | MediaSource) => {
  const u = `blob:test/${++urlSeq}`
  objectUrls.set(u, b as Blob)
  return u
}
URL.revokeObjectURL = (u: string) => {
  objectUrls.delete(u)
}
/** object URLs made and not yet revoked */
export function liveObjectUrls(): string[] {
  return [...objectUrls.keys()]
}
