import { describe, expect, it } from 'vitest'
import { dayLabel, shortDuration } from './format'

describe('format', () => {
  it.each([
    [4_200, '5s'], [59_000, '59s'], [61_000, '2m'], [3_599_000, '1h'], [3_601_000, '1h'], [5 * 3600_000, '5h'],
    [86_400_000, '1d'], [7 * 86_400_000, '7d'], [-5, '0s'],
  ])('shortDuration(%d) is %s', (ms, text) => expect(shortDuration(ms)).toBe(text))

  it('names today and yesterday', () => {
    const now = new Date(2026, 4, 10, 12).getTime()
    expect(dayLabel(now - 3600_000, now)).toBe('Today')
    expect(dayLabel(now - 20 * 3600_000, now)).toBe('Yesterday')
    expect(dayLabel(now - 3 * 86400_000, now)).not.toMatch(/Today|Yesterday/)
  })
})
