// Typed reading of JSON objects: the first problem is remembered and
// reported as `malformed` by done().
import type { JSONObject, JSONValue } from './cjson'
import { type Bytes, fromB64 } from './bytes'

export const MAX_SAFE = Number.MAX_SAFE_INTEGER

export function isObject(v: JSONValue | undefined): v is JSONObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export class Fields {
  readonly m: JSONObject
  readonly used = new Set<string>()
  err: string | null = null

  constructor(v: JSONValue | undefined) {
    if (isObject(v)) this.m = v
    else {
      this.m = Object.create(null) as JSONObject
      this.err = 'not a JSON object'
    }
  }
  bad(name: string, want: string) {
    if (this.err === null) this.err = `member "${name}" must be ${want}`
  }
  has(name: string): boolean {
    return this.err === null && Object.prototype.hasOwnProperty.call(this.m, name)
  }
  get(name: string, required: boolean): JSONValue | undefined {
    if (this.err !== null) return undefined
    this.used.add(name)
    if (!Object.prototype.hasOwnProperty.call(this.m, name)) {
      if (required) this.err = `member "${name}" is required`
      return undefined
    }
    return this.m[name]
  }
  str(name: string, required = true): string {
    const v = this.get(name, required)
    if (v === undefined) return ''
    if (typeof v !== 'string') {
      this.bad(name, 'a string')
      return ''
    }
    return v
  }
  int(name: string, required: boolean, lo: number, hi: number): number {
    const v = this.get(name, required)
    if (v === undefined) return 0
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < lo || v > hi) {
      this.bad(name, `an integer from ${lo} to ${hi}`)
      return 0
    }
    return v
  }
  bytes(name: string, required: boolean, lo: number, hi: number): Bytes {
    const s = this.str(name, required)
    if (this.err !== null || (!required && !this.has(name))) return new Uint8Array(0)
    const b = fromB64(s)
    if (b === null || b.length < lo || b.length > hi) {
      this.bad(name, `standard base64 (with padding) of ${lo} to ${hi} bytes`)
      return new Uint8Array(0)
    }
    return b
  }
  array(name: string, required = true): JSONValue[] {
    const v = this.get(name, required)
    if (v === undefined) return []
    if (!Array.isArray(v)) {
      this.bad(name, 'an array')
      return []
    }
    return v
  }
  strings(name: string, required: boolean, valid: (s: string) => boolean): string[] {
    const a = this.array(name, required)
    if (this.err !== null) return []
    const out: string[] = []
    for (const e of a) {
      if (typeof e !== 'string' || !valid(e)) {
        this.bad(name, 'an array of valid strings')
        return []
      }
      out.push(e)
    }
    return out
  }
  object(name: string, required = true): JSONObject {
    const v = this.get(name, required)
    if (v === undefined) return Object.create(null) as JSONObject
    if (!isObject(v)) {
      this.bad(name, 'an object')
      return Object.create(null) as JSONObject
    }
    return v
  }
  /** The first problem, or an unknown member unless allowed; null if none. */
  done(allowUnknown: boolean): string | null {
    if (this.err !== null || allowUnknown) return this.err
    for (const k of Object.keys(this.m)) if (!this.used.has(k)) return `unknown member "${k}"`
    return null
  }
}

// Identifier rules of §7.1.
export const messageIdRE = /^[0-9a-f]{32}$/
export const keyIdRE = /^[0-9a-f]{32}$/
export const tokenRE = /^[A-Za-z0-9._:@-]{1,128}$/
export const typeRE = /^[a-z0-9._-]{1,32}$/

export function validAddress(a: string): boolean {
  const i = a.indexOf('@')
  if (i < 0) return false
  return /^[a-z0-9._-]{3,64}$/.test(a.slice(0, i)) && /^[a-z0-9.:[\]-]{1,255}$/.test(a.slice(i + 1))
}
