// Canonical JSON (spec/e2ee.md §2): a strict parser of the canonical subset
// and the encoder whose output equals RFC 8785 (JCS) for that subset.
import { E2EEError } from './errors'
import { type Bytes, equal, fromUtf8, utf8 } from './bytes'

export type JSONValue = null | boolean | number | string | JSONValue[] | JSONObject
export interface JSONObject {
  [name: string]: JSONValue
}

export class CJSONError extends Error {}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function isObject(v: JSONValue): v is JSONObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Encodes a value canonically; throws CJSONError outside the subset. */
export function encode(v: JSONValue): string {
  if (v === null) return 'null'
  if (v === true) return 'true'
  if (v === false) return 'false'
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new CJSONError('not a safe integer')
    return Object.is(v, -0) ? '0' : String(v)
  }
  if (typeof v === 'string') {
    if (loneSurrogate.test(v)) throw new CJSONError('lone surrogate')
    return JSON.stringify(v)
  }
  if (Array.isArray(v)) return '[' + v.map(encode).join(',') + ']'
  if (isObject(v)) {
    const names = Object.keys(v)
    for (const n of names) if (!/^[\x20-\x7e]*$/.test(n)) throw new CJSONError('member name not printable ASCII')
    // For ASCII names UTF-16 order equals bytewise order.
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return '{' + names.map((n) => JSON.stringify(n) + ':' + encode(v[n])).join(',') + '}'
  }
  throw new CJSONError('not a JSON value')
}

export function encodeBytes(v: JSONValue): Bytes {
  return utf8(encode(v))
}

/** Makes an object without a prototype, so any member name is plain data. */
export function obj(entries: [string, JSONValue][] = []): JSONObject {
  const o = Object.create(null) as JSONObject
  for (const [k, v] of entries) o[k] = v
  return o
}

class Parser {
  i = 0
  constructor(readonly s: string) {}

  fail(msg: string): never {
    throw new CJSONError(`${msg} at offset ${this.i}`)
  }
  ws() {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i])) this.i++
  }
  value(depth: number): JSONValue {
    if (depth > 64) this.fail('nested too deeply')
    this.ws()
    const c = this.s[this.i]
    if (c === '{') return this.object(depth)
    if (c === '[') return this.array(depth)
    if (c === '"') return this.string()
    if (c === '-' || (c >= '0' && c <= '9')) return this.number()
    for (const [lit, val] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(lit, this.i)) {
        this.i += lit.length
        return val
      }
    }
    return this.fail('unexpected character')
  }
  object(depth: number): JSONObject {
    this.i++
    const o = obj()
    const seen = new Set<string>()
    this.ws()
    if (this.s[this.i] === '}') {
      this.i++
      return o
    }
    for (;;) {
      this.ws()
      if (this.s[this.i] !== '"') this.fail('expected a member name')
      const start = this.i
      const name = this.string()
      if (!/^[\x20-\x7e]*$/.test(name)) {
        this.i = start
        this.fail('member name is not printable ASCII')
      }
      if (seen.has(name)) this.fail(`duplicate member name ${JSON.stringify(name)}`)
      seen.add(name)
      this.ws()
      if (this.s[this.i] !== ':') this.fail('expected ":"')
      this.i++
      o[name] = this.value(depth + 1)
      this.ws()
      if (this.s[this.i] === ',') {
        this.i++
        continue
      }
      if (this.s[this.i] === '}') {
        this.i++
        return o
      }
      this.fail('unexpected character')
    }
  }
  array(depth: number): JSONValue[] {
    this.i++
    const a: JSONValue[] = []
    this.ws()
    if (this.s[this.i] === ']') {
      this.i++
      return a
    }
    for (;;) {
      a.push(this.value(depth + 1))
      this.ws()
      if (this.s[this.i] === ',') {
        this.i++
        continue
      }
      if (this.s[this.i] === ']') {
        this.i++
        return a
      }
      this.fail('unexpected character')
    }
  }
  string(): string {
    this.i++
    let out = ''
    for (;;) {
      if (this.i >= this.s.length) this.fail('unterminated string')
      const c = this.s[this.i]
      const code = c.charCodeAt(0)
      if (c === '"') {
        this.i++
        break
      }
      if (code < 0x20) this.fail('control character in string')
      if (c === '\\') {
        const e = this.s[this.i + 1]
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }
        if (e in simple) {
          out += simple[e]
          this.i += 2
          continue
        }
        if (e === 'u') {
          const h = this.s.slice(this.i + 2, this.i + 6)
          if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\u escape')
          out += String.fromCharCode(parseInt(h, 16))
          this.i += 6
          continue
        }
        this.fail('invalid escape')
      }
      out += c
      this.i++
    }
    if (loneSurrogate.test(out)) this.fail('lone surrogate')
    return out
  }
  number(): number {
    const m = /^-?(0|[1-9][0-9]*)/.exec(this.s.slice(this.i))
    if (!m) return this.fail('invalid number')
    const rest = this.s[this.i + m[0].length]
    if (rest === '.' || rest === 'e' || rest === 'E') this.fail('number is not an integer (no fractions or exponents)')
    if (rest !== undefined && rest >= '0' && rest <= '9') this.fail('number with a leading zero')
    if (m[0] === '-0') this.fail('"-0" is not allowed')
    const n = Number(m[0])
    if (!Number.isSafeInteger(n)) this.fail('integer out of range')
    this.i += m[0].length
    return n
  }
}

/** Parses JSON text of the canonical subset (whitespace and member order are free). */
export function parse(text: string): JSONValue {
  const p = new Parser(text)
  const v = p.value(0)
  p.ws()
  if (p.i !== text.length) p.fail('trailing data')
  return v
}

/** Parses UTF-8 bytes; throws CJSONError on invalid UTF-8 or JSON outside the subset. */
export function parseBytes(b: Uint8Array): JSONValue {
  let s: string
  try {
    s = fromUtf8(b)
  } catch {
    throw new CJSONError('invalid UTF-8')
  }
  return parse(s)
}

/** Whether bytes are exactly the canonical encoding of their value. */
export function isCanonical(b: Uint8Array): boolean {
  try {
    return equal(encodeBytes(parseBytes(b)), b)
  } catch {
    return false
  }
}

/** Parses and checks canonical form: `malformed` if not JSON, `non_canonical` if not canonical. */
export function parseCanonical(b: Uint8Array, what: string): JSONValue {
  let v: JSONValue
  try {
    v = parseBytes(b)
  } catch (e) {
    throw new E2EEError('malformed', `${what} is not valid JSON: ${(e as Error).message}`)
  }
  if (!equal(encodeBytes(v), b)) throw new E2EEError('non_canonical', `${what} is not canonical JSON`)
  return v
}
