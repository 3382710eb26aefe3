// Register and login (spec/e2ee.md §4–§6, spec/openapi.yaml), mirroring the
// Go SDK's clients/go/client/auth.go: the client derives the password keys,
// makes and wraps its keys and signs its bundle; it then checks that the
// server echoes what was sent, and on login that the KDF parameters did not
// change between prelogin and login and that the unwrapped keys are those
// of the account's bundle.
import { ApiError, type ApiClient, type TokenResponse } from './client'
import { type PrivateKeys, type UnwrappedKeys, generateKeys, unwrapPrivateKeys, wrapPrivateKeys } from '../crypto/account'
import { type KeyBundle, keysMatch, makeKeyBundle, parseKeyBundle } from '../crypto/bundle'
import { type Bytes, equal, fromB64, toB64, utf8 } from '../crypto/bytes'
import { type JSONValue, encode } from '../crypto/cjson'
import { E2EEError } from '../crypto/errors'
import { type KdfParams, checkKdf, derivePasswordKeys } from '../crypto/kdf'
import { MIN_ITERATIONS } from '../crypto/labels'
import { random } from '../crypto/primitives'

/** A refusal of the account flows; `message` is for people. */
export class AccountError extends Error {
  constructor(
    readonly code: 'invalid_username' | 'server_mismatch' | 'kdf_changed' | 'wrong_password' | 'keys_mismatch' | 'weak_kdf',
    message: string,
  ) {
    super(message)
    this.name = 'AccountError'
  }
}

/** Case-folds ASCII letters and checks the username rules (Go privateline.ParseUsername). */
export function parseUsername(s: string): string {
  if (s.length < 3 || s.length > 64) throw new AccountError('invalid_username', 'A username has 3 to 64 characters.')
  const u = s.replace(/[A-Z]/g, (c) => c.toLowerCase())
  if (!/^[a-z0-9._-]+$/.test(u)) throw new AccountError('invalid_username', "A username may contain only a–z, 0–9, '.', '_' and '-'.")
  return u
}

/** A logged-in account: private keys and kek are non-extractable CryptoKeys. */
export interface Account {
  address: string
  username: string
  bundle: KeyBundle
  keys: PrivateKeys
  kek: CryptoKey
  params: KdfParams
  /** the wrapped private keys as the server stores them */
  nonce: Bytes
  encryptedPrivateKey: Bytes
}

export interface Registered {
  address: string
  username: string
  createdAt: string
  bundle: KeyBundle
  /** logs the new account in without running PBKDF2 again */
  login(): Promise<Account>
}

export type Progress = 'deriving' | 'generating' | 'registering' | 'logging_in' | 'unwrapping'

export interface RegisterParams {
  username: string
  password: string
  email?: string
  /** the homeserver's name (the part after @ of addresses) */
  serverName: string
  /** keys made beforehand for username@serverName; generated when absent */
  keys?: UnwrappedKeys
  now?: () => number
  onProgress?: (p: Progress) => void
}

interface KeyMaterial {
  address: string
  kdf: string
  iterations: number
  salt: string
  encrypted_private_key: string
  nonce: string
  key_bundle: JSONValue
}

const badAnswer = (what: string) => new AccountError('server_mismatch', `The server gave a wrong answer (${what}). Nothing was changed on this device.`)

function b64(s: unknown, what: string): Bytes {
  const b = typeof s === 'string' ? fromB64(s) : null
  if (b === null) throw badAnswer(`${what} is not base64`)
  return b
}

/** The server's key_bundle member, canonical, parsed and verified. */
async function bundleOf(v: JSONValue | undefined): Promise<KeyBundle> {
  if (v === undefined) throw badAnswer('no key bundle')
  try {
    return await parseKeyBundle(utf8(encode(v)))
  } catch (e) {
    throw badAnswer(`its key bundle does not verify: ${e instanceof Error ? e.message : String(e)}`)
  }
}

/** POST /api/prelogin: the account's KDF parameters (convincing fakes for unknown names). */
export async function prelogin(api: ApiClient, username: string): Promise<KdfParams> {
  const name = parseUsername(username)
  const p = await api.post<{ kdf: string; iterations: number; salt: string }>('/api/prelogin', { username: name }, { auth: false })
  const params = { kdf: p.kdf, iterations: p.iterations, salt: b64(p.salt, 'salt') }
  guardKdf(params)
  return params
}

function guardKdf(p: KdfParams): void {
  try {
    checkKdf(p)
  } catch (e) {
    if (e instanceof E2EEError) throw new AccountError('weak_kdf', 'The server asked for a weak password protection; this app refuses it.')
    throw e
  }
  if (p.salt.length !== 16) throw badAnswer('the salt is not 16 bytes')
}

/** Creates an account (POST /api/register). It does not log in: call login() on the result. */
export async function register(api: ApiClient, p: RegisterParams): Promise<Registered> {
  const name = parseUsername(p.username)
  const address = `${name}@${p.serverName.toLowerCase()}`
  const params: KdfParams = { kdf: 'pbkdf2-sha256', iterations: MIN_ITERATIONS, salt: random(16) }
  p.onProgress?.('deriving')
  const pk = await derivePasswordKeys(p.password, params)
  p.onProgress?.('generating')
  const keys = p.keys ?? (await generateKeys(address))
  if (keys.keys.address !== address) throw new AccountError('server_mismatch', `The keys are for ${keys.keys.address}, not ${address}.`)
  const bundle = await makeKeyBundle(keys.keys, (p.now ?? Date.now)())
  const w = await wrapPrivateKeys(pk.kek, address, keys.ed25519Pkcs8, keys.rsaPkcs8)
  if (!p.keys) {
    keys.ed25519Pkcs8.fill(0)
    keys.rsaPkcs8.fill(0)
  }
  const fields: Record<string, string> = {
    username: name,
    auth_key: toB64(pk.authKey),
    encrypted_private_key: toB64(w.encryptedPrivateKey),
    salt: toB64(params.salt),
    nonce: toB64(w.nonce),
  }
  if (p.email) fields.email = p.email
  // The bundle goes as its exact canonical text (what was signed).
  const rawBody = JSON.stringify(fields).slice(0, -1) + ',"key_bundle":' + new TextDecoder().decode(bundle.json) + '}'
  p.onProgress?.('registering')
  const r = await api.request<KeyMaterial & { username: string; created_at: string }>('POST', '/api/register', {
    rawBody,
    auth: false,
    messages: { conflict: `The username ${name} is taken.` },
  })
  const rr = r.data
  if (rr?.address !== address || rr.username !== name) throw badAnswer(`it registered ${String(rr?.address)}`)
  const sb = await bundleOf(rr.key_bundle)
  if (!equal(sb.json, bundle.json)) throw badAnswer('it stored another key bundle than the one sent')
  return {
    address,
    username: name,
    createdAt: rr.created_at,
    bundle,
    login: () => loginWith(api, name, pk, params, p.onProgress),
  }
}

/** Logs in: prelogin, the password keys, POST /api/login, the private keys unwrapped and checked. */
export async function login(api: ApiClient, username: string, password: string, onProgress?: (p: Progress) => void): Promise<Account> {
  const name = parseUsername(username)
  const params = await prelogin(api, name)
  onProgress?.('deriving')
  const pk = await derivePasswordKeys(password, params)
  return loginWith(api, name, pk, params, onProgress)
}

async function loginWith(
  api: ApiClient,
  name: string,
  pk: { authKey: Bytes; kek: CryptoKey },
  params: KdfParams,
  onProgress?: (p: Progress) => void,
): Promise<Account> {
  onProgress?.('logging_in')
  const lr = await api.post<TokenResponse & KeyMaterial>(
    '/api/login',
    { username: name, auth_key: toB64(pk.authKey), ...(api.mode === 'cookie' ? { use_cookies: true } : {}) },
    { auth: false, messages: { unauthenticated: 'Wrong username or password.' } },
  )
  const address = typeof lr?.address === 'string' ? lr.address : ''
  const at = address.lastIndexOf('@')
  if (at < 0 || address.slice(0, at) !== name) throw badAnswer(`it answered for another account: ${address}`)
  if (lr.kdf !== params.kdf || lr.iterations !== params.iterations || !equal(b64(lr.salt, 'salt'), params.salt))
    throw new AccountError('kdf_changed', "The server's password settings changed during the login. Try again.")
  const bundle = await bundleOf(lr.key_bundle)
  if (bundle.address !== address) throw badAnswer("its key bundle is of another account")
  const nonce = b64(lr.nonce, 'nonce')
  const encryptedPrivateKey = b64(lr.encrypted_private_key, 'encrypted_private_key')
  onProgress?.('unwrapping')
  let keys: PrivateKeys
  try {
    const u = await unwrapPrivateKeys(pk.kek, address, nonce, encryptedPrivateKey)
    u.ed25519Pkcs8.fill(0)
    u.rsaPkcs8.fill(0)
    keys = u.keys
  } catch (e) {
    if (e instanceof E2EEError && e.code === 'unwrap_failed')
      throw new AccountError('wrong_password', 'Wrong password: your private keys do not open with it.')
    throw badAnswer(`the private keys are damaged: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (!keysMatch(keys, bundle)) throw new AccountError('keys_mismatch', "The server's private keys are not those of your published keys. Do not use this account until this is explained.")
  api.adoptTokens(lr)
  return { address, username: name, bundle, keys, kek: pk.kek, params, nonce, encryptedPrivateKey }
}

export { ApiError }
