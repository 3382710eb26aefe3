import { fromB64, fromHex } from '../src/crypto/bytes'
import { type PrivateKeys, privateKeysFrom } from '../src/crypto/account'
import { type KeyBundle, parseKeyBundle } from '../src/crypto/bundle'
import { load } from './vectors'

export interface Party {
  name: string
  address: string
  keys: PrivateKeys
  bundle: KeyBundle
  raw: Record<string, string>
}

let cache: Promise<Map<string, Party>> | undefined

export function parties(): Promise<Map<string, Party>> {
  cache ??= (async () => {
    const m = new Map<string, Party>()
    for (const c of load('parties.json').cases) {
      const keys = await privateKeysFrom(c.address, fromHex(c.identity_pkcs8_hex), fromB64(c.encryption_pkcs8_b64)!)
      const bundle = await parseKeyBundle(new TextEncoder().encode(c.key_bundle))
      m.set(c.name, { name: c.name, address: c.address, keys, bundle, raw: c })
    }
    return m
  })()
  return cache
}
