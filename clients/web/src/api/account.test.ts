import { beforeAll, describe, expect, it } from 'vitest'
import { ApiClient } from './client'
import { AccountError, login, parseUsername, register } from './account'
import { type UnwrappedKeys, privateKeysFrom, wrapPrivateKeys } from '../crypto/account'
import { fromB64, fromHex, toB64 } from '../crypto/bytes'
import { derivePasswordKeys } from '../crypto/kdf'
import { load } from '../../test/vectors'

const json = (status: number, v: unknown) => new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } })
const err = (status: number, code: string, message: string) => json(status, { error: { code, message } })

interface Stored {
  username: string
  authKey: string
  salt: string
  nonce: string
  encryptedPrivateKey: string
  keyBundle: unknown
}

/** A homeserver in memory, enough for register, prelogin and login. Tamper hooks play a bad server. */
class FakeServer {
  users = new Map<string, Stored>()
  sentAuthKeys: string[] = []
  tamper: {
    register?: (r: Record<string, unknown>) => void
    login?: (r: Record<string, unknown>) => void
    prelogin?: (r: Record<string, unknown>) => void
  } = {}
  fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const path = String(input)
    const body = JSON.parse(String(init?.body ?? '{}'))
    if (path === '/api/register') {
      if (this.users.has(body.username)) return err(409, 'conflict', 'already exists')
      const s: Stored = { username: body.username, authKey: body.auth_key, salt: body.salt, nonce: body.nonce, encryptedPrivateKey: body.encrypted_private_key, keyBundle: body.key_bundle }
      this.users.set(body.username, s)
      const r: Record<string, unknown> = { ...this.material(s), username: s.username, created_at: '2026-01-01T00:00:00Z' }
      this.tamper.register?.(r)
      return json(201, r)
    }
    if (path === '/api/prelogin') {
      const s = this.users.get(body.username)
      const r: Record<string, unknown> = { kdf: 'pbkdf2-sha256', iterations: 600000, salt: s?.salt ?? toB64(new Uint8Array(16)) }
      this.tamper.prelogin?.(r)
      return json(200, r)
    }
    if (path === '/api/login') {
      this.sentAuthKeys.push(body.auth_key)
      const s = this.users.get(body.username)
      if (!s || s.authKey !== body.auth_key) return err(401, 'unauthenticated', 'wrong username or password')
      const r: Record<string, unknown> = {
        ...this.material(s),
        ...(body.use_cookies ? { csrf_token: 'csrf' } : { access_token: 'a1', refresh_token: 'r1' }),
        token_type: 'Bearer', expires_in: 900, refresh_expires_in: 86400,
      }
      this.tamper.login?.(r)
      return json(200, r)
    }
    return err(404, 'not_found', 'not found')
  }) as typeof fetch

  material(s: Stored) {
    return {
      address: `${s.username}@example.org`, kdf: 'pbkdf2-sha256', iterations: 600000, salt: s.salt,
      encrypted_private_key: s.encryptedPrivateKey, nonce: s.nonce, key_bundle: s.keyBundle,
    }
  }
}

const api = (s: FakeServer, mode: 'body' | 'cookie' = 'body') => new ApiClient({ fetch: s.fetch, mode, locks: null, csrfCookie: () => undefined })

let alice: UnwrappedKeys
let bob: UnwrappedKeys
const NOW = 1767225600000

beforeAll(async () => {
  const byName = new Map(load('parties.json').cases.map((c) => [c.name, c]))
  const mk = async (name: string): Promise<UnwrappedKeys> => {
    const c = byName.get(name)!
    const ed = fromHex(c.identity_pkcs8_hex)
    const rsa = fromB64(c.encryption_pkcs8_b64)!
    return { keys: await privateKeysFrom(c.address, ed, rsa), ed25519Pkcs8: ed, rsaPkcs8: rsa }
  }
  alice = await mk('alice')
  bob = await mk('bob')
})

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (e) {
    return e as Error
  }
  throw new Error('no error')
}

describe('register and login', () => {
  it('registers alice with the vector keys, then logs in on a new device with the password', async () => {
    const s = new FakeServer()
    const progress: string[] = []
    const reg = await register(api(s), { username: 'Alice', password: 'correct horse battery staple', serverName: 'example.org', keys: alice, now: () => NOW, onProgress: (p) => progress.push(p) })
    expect(reg.address).toBe('alice@example.org')
    expect(reg.bundle.createdAt).toBe(NOW)
    expect(progress).toEqual(['deriving', 'generating', 'registering'])
    // The sent bundle is the canonical signed text; the stored material never holds the password.
    const stored = s.users.get('alice')!
    expect(JSON.stringify(stored)).not.toContain('correct horse')

    const c = api(s)
    const acc = await login(c, 'alice', 'correct horse battery staple')
    expect(acc.address).toBe('alice@example.org')
    expect(acc.keys.keyId).toBe(alice.keys.keyId)
    expect(acc.keys.identity.key.extractable).toBe(false)
    expect(acc.keys.encryption.key.extractable).toBe(false)
    expect(acc.kek.extractable).toBe(false)
    expect(c.hasSession).toBe(true)
    // The same device logs in without PBKDF2 again, in cookie mode too.
    const c2 = api(s, 'cookie')
    const reg2 = await register(c2, { username: 'bob', password: 'hunter2hunter2', serverName: 'example.org', keys: bob, now: () => NOW })
    expect((await reg2.login()).address).toBe('bob@example.org')
    expect(c2.hasSession).toBe(true)
  })

  it('sends the auth key of spec/vectors/kdf.json and unwraps keys sealed under its kek', async () => {
    const v = load('kdf.json').cases.find((c) => c.name === 'ascii')!
    const s = new FakeServer()
    const salt = fromHex(v.salt_hex)
    const pk = await derivePasswordKeys(v.password, { kdf: v.kdf, iterations: v.iterations, salt })
    const w = await wrapPrivateKeys(pk.kek, 'alice@example.org', alice.ed25519Pkcs8, alice.rsaPkcs8)
    const bundle = JSON.parse(load('parties.json').cases.find((c) => c.name === 'alice')!.key_bundle)
    s.users.set('alice', { username: 'alice', authKey: v.auth_key_b64, salt: toB64(salt), nonce: toB64(w.nonce), encryptedPrivateKey: toB64(w.encryptedPrivateKey), keyBundle: bundle })
    const acc = await login(api(s), 'ALICE', v.password)
    expect(s.sentAuthKeys).toEqual([v.auth_key_b64])
    expect(acc.keys.keyId).toBe(alice.keys.keyId)
  })

  it('says plainly when the password is wrong, and when the username is taken', async () => {
    const s = new FakeServer()
    await register(api(s), { username: 'alice', password: 'right password', serverName: 'example.org', keys: alice, now: () => NOW })
    const e = await rejects(login(api(s), 'alice', 'wrong password'))
    expect(e.message).toBe('Wrong username or password.')
    const e2 = await rejects(register(api(s), { username: 'alice', password: 'x', serverName: 'example.org', keys: alice, now: () => NOW }))
    expect(e2.message).toBe('The username alice is taken.')
    expect(() => parseUsername('a b')).toThrow(AccountError)
    expect(parseUsername('Alice.B_c-1')).toBe('alice.b_c-1')
  })

  it('refuses a server that does not echo the bundle or address it was sent', async () => {
    const s = new FakeServer()
    s.tamper.register = (r) => {
      r.key_bundle = JSON.parse(load('parties.json').cases.find((c) => c.name === 'bob')!.key_bundle)
    }
    expect(await rejects(register(api(s), { username: 'alice', password: 'pw', serverName: 'example.org', keys: alice, now: () => NOW }))).toMatchObject({ code: 'server_mismatch' })
    const s2 = new FakeServer()
    s2.tamper.register = (r) => {
      r.address = 'mallory@example.org'
    }
    expect(await rejects(register(api(s2), { username: 'alice', password: 'pw', serverName: 'example.org', keys: alice, now: () => NOW }))).toMatchObject({ code: 'server_mismatch' })
  })

  it('refuses KDF parameters that change during the login, and a weak KDF', async () => {
    const s = new FakeServer()
    await register(api(s), { username: 'alice', password: 'pw', serverName: 'example.org', keys: alice, now: () => NOW })
    s.tamper.login = (r) => {
      r.iterations = 700000
    }
    const c = api(s)
    expect(await rejects(login(c, 'alice', 'pw'))).toMatchObject({ code: 'kdf_changed' })
    expect(c.hasSession).toBe(false)
    s.tamper = {
      prelogin: (r) => {
        r.iterations = 1000
      },
    }
    expect(await rejects(login(api(s), 'alice', 'pw'))).toMatchObject({ code: 'weak_kdf' })
  })

  it("refuses a login answer with another account's bundle or keys", async () => {
    const s = new FakeServer()
    await register(api(s), { username: 'alice', password: 'pw', serverName: 'example.org', keys: alice, now: () => NOW })
    s.tamper.login = (r) => {
      r.key_bundle = JSON.parse(load('parties.json').cases.find((c) => c.name === 'bob')!.key_bundle)
    }
    expect(await rejects(login(api(s), 'alice', 'pw'))).toMatchObject({ code: 'server_mismatch' })
    // Keys wrapped under alice's kek for her address, but they are bob's: keys_mismatch.
    const salt = fromB64(s.users.get('alice')!.salt)!
    const pk = await derivePasswordKeys('pw', { kdf: 'pbkdf2-sha256', iterations: 600000, salt })
    const w = await wrapPrivateKeys(pk.kek, 'alice@example.org', bob.ed25519Pkcs8, bob.rsaPkcs8)
    s.tamper.login = (r) => {
      r.nonce = toB64(w.nonce)
      r.encrypted_private_key = toB64(w.encryptedPrivateKey)
    }
    const c = api(s)
    expect(await rejects(login(c, 'alice', 'pw'))).toMatchObject({ code: 'keys_mismatch' })
    expect(c.hasSession).toBe(false)
  })
})
