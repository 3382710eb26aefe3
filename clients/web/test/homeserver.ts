// A REAL homeserver for the integration tests: built from this repository
// with `go build`, started on 127.0.0.1 with a data directory of the test's
// choosing, stopped with SIGTERM. Without a Go toolchain buildHomeserver
// throws and the suite fails: it never skips.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const repo = fileURLToPath(new URL('../../..', import.meta.url))

/** Builds the homeserver into dir and returns the binary's path. */
export function buildHomeserver(dir: string): string {
  const bin = join(dir, 'homeserver')
  execFileSync('go', ['build', '-o', bin, './cmd/homeserver'], { cwd: repo, stdio: 'pipe' })
  return bin
}

/** A running homeserver: its address (host:port) and how to stop it. */
export interface Homeserver {
  addr: string
  stop(): Promise<void>
}

/**
 * Starts bin in development mode with generous rate limits, the given
 * settings on top (DATA_DIR, LISTEN_ADDR, SERVER_NAME at least), and waits
 * until it logs that it started.
 */
export function startHomeserver(bin: string, env: Record<string, string>): Promise<Homeserver> {
  const p: ChildProcess = spawn(bin, ['-env-file', '/dev/null'], {
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '',
      METRICS_ADDR: '', PRIVATELINE_ENV: 'development', JWT_COOKIE_SECURE: 'false',
      AUTH_RATE_PER_MINUTE: '600000', AUTH_RATE_BURST: '100000', LOGIN_RATE_PER_MINUTE: '600000', LOGIN_RATE_BURST: '100000',
      MESSAGE_RATE_PER_MINUTE: '600000', MESSAGE_RATE_BURST: '100000',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  const stop = async () => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const gone = new Promise((r) => p.once('exit', r))
    p.kill('SIGTERM')
    await gone
  }
  const tail: string[] = []
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the homeserver did not start within 60 s:\n' + tail.join('\n'))), 60_000)
    createInterface({ input: p.stderr! }).on('line', (line) => {
      tail.push(line)
      if (tail.length > 30) tail.shift()
      const m = /"msg":"homeserver started".*?"addr":"(127\.0\.0\.1:\d+)"/.exec(line)
      if (m) {
        clearTimeout(t)
        resolve({ addr: m[1], stop })
      }
    })
    p.on('exit', (code) => {
      clearTimeout(t)
      reject(new Error(`the homeserver exited (${code}):\n${tail.join('\n')}`))
    })
  })
}

/**
 * A browser's cookie jar over Node's fetch: cookies set by the server are
 * sent back, and deleted when it expires them. onBody, if given, sees
 * every string or byte request body.
 */
export function cookieJar(onBody?: (body: string) => void) {
  const jar = new Map<string, string>()
  const f: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers)
    if (jar.size) headers.set('Cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '))
    const b = init?.body
    if (onBody && typeof b === 'string') onBody(b)
    else if (onBody && b instanceof Uint8Array) onBody(Buffer.from(b).toString('latin1'))
    const r = await fetch(input, { ...init, headers })
    for (const c of r.headers.getSetCookie()) {
      const [kv, ...attrs] = c.split(';')
      const i = kv.indexOf('=')
      const name = kv.slice(0, i).trim()
      if (attrs.some((a) => /^\s*max-age=(0\s*$|-)/i.test(a))) jar.delete(name)
      else jar.set(name, kv.slice(i + 1).trim())
    }
    return r
  }
  return { fetch: f, csrfCookie: () => jar.get('pl_csrf'), jar }
}
