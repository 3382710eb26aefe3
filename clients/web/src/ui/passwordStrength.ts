// A rough, local estimate of how guessable a password is. It checks: the
// length; which character classes appear (lower case, upper case, digits,
// other symbols), which sets the alphabet size; how many characters are
// distinct; runs of the same character; keyboard and alphabet sequences
// ("1234", "abcd", "qwerty"); and a short list of the most common passwords
// and words found in them. The result is an entropy-like score in bits,
// reduced for each weakness found; it is a hint, not a guarantee.

export type StrengthLevel = 'empty' | 'too-short' | 'weak' | 'fair' | 'good' | 'strong'

export interface Strength {
  level: StrengthLevel
  /** 0..100 for a meter */
  score: number
  /** what the user reads next to the field */
  hint: string
}

export const minPasswordLength = 8

const common = [
  'password', 'passw0rd', 'letmein', 'welcome', 'admin', 'login', 'qwerty', 'azerty', 'iloveyou', 'monkey', 'dragon',
  'football', 'baseball', 'master', 'sunshine', 'princess', 'shadow', 'secret', 'privateline', 'abc123', '123456',
]
const sequences = ['abcdefghijklmnopqrstuvwxyz', '01234567890', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm']

function hasSequence(p: string, n = 4): boolean {
  const s = p.toLowerCase()
  for (const seq of sequences) {
    const both = [seq, [...seq].reverse().join('')]
    for (const q of both) for (let i = 0; i + n <= q.length; i++) if (s.includes(q.slice(i, i + n))) return true
  }
  return false
}

export function passwordStrength(p: string): Strength {
  if (p.length === 0) return { level: 'empty', score: 0, hint: `Use at least ${minPasswordLength} characters; a few unrelated words work well.` }
  if (p.length < minPasswordLength) {
    return { level: 'too-short', score: 10, hint: `Too short: ${minPasswordLength - p.length} more character${minPasswordLength - p.length === 1 ? '' : 's'} needed.` }
  }
  let pool = 0
  if (/[a-z]/.test(p)) pool += 26
  if (/[A-Z]/.test(p)) pool += 26
  if (/[0-9]/.test(p)) pool += 10
  if (/[^a-zA-Z0-9]/.test(p)) pool += 33
  const distinct = new Set(p).size
  // Length counts fully only for distinct characters; repeats add little.
  const effective = Math.min(p.length, distinct * 2)
  let bits = effective * Math.log2(Math.max(pool, 10))
  const problems: string[] = []
  if (/(.)\1\1/.test(p)) {
    bits -= 15
    problems.push('repeated characters')
  }
  if (hasSequence(p)) {
    bits -= 20
    problems.push('a sequence like "1234" or "qwerty"')
  }
  const lower = p.toLowerCase()
  if (common.some((w) => lower.includes(w))) {
    bits -= 30
    problems.push('a very common password')
  }
  const why = problems.length ? ` It contains ${problems.join(' and ')}.` : ''
  if (bits < 40) return { level: 'weak', score: 25, hint: `Weak: easy to guess.${why} Add more words or characters.` }
  if (bits < 60) return { level: 'fair', score: 50, hint: `Fair.${why} A longer password would be safer.` }
  if (bits < 80) return { level: 'good', score: 75, hint: `Good.${why}` }
  return { level: 'strong', score: 100, hint: `Strong.${why}` }
}
