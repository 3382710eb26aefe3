// The privateline CLI (the Go SDK) as a browser test's other party: one
// account with two devices, "listen" (which prints events as JSON lines)
// and "send", each in its own config directory.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { PASSWORD } from './harness.mjs'

/**
 * cliAccount registers a fresh account on the server at serverUrl with the
 * CLI (device "listen") and logs a second device ("send") in. close()
 * stops the listener and removes the config directories.
 */
export function cliAccount(serverUrl, serverName) {
  const cli = process.env.PRIVATELINE_CLI
  assert.ok(cli, 'PRIVATELINE_CLI is not set: run the browser tests with scripts/e2etest.sh (it builds the CLI)')
  const dir = mkdtempSync(join(tmpdir(), 'privateline-e2e-cli-'))
  const pwFile = join(dir, 'password')
  writeFileSync(pwFile, PASSWORD + '\n', { mode: 0o600 })
  let listener
  const run = (device, ...args) => {
    const r = spawnSync(cli, ['--config-dir', join(dir, device), '--server', serverUrl, '--password-file', pwFile, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(r.status, 0, `privateline ${args.join(' ')}: exit ${r.status}\n${r.stderr}`)
    return r.stdout
  }
  const name = `term${Date.now().toString(36)}`
  const account = {
    address: `${name}@${serverName}`,
    run,
    /** Starts "listen" on the first device; nextEvent(pred, what) waits up to timeout ms for a matching event. */
    listen(timeout) {
      listener = spawn(cli, ['--config-dir', join(dir, 'listen'), '--password-file', pwFile, '--json', 'listen'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stderr = ''
      listener.stderr.on('data', (d) => (stderr += d))
      const events = []
      const waiters = []
      createInterface({ input: listener.stdout }).on('line', (line) => {
        events.push(JSON.parse(line))
        for (const wt of waiters) wt()
      })
      const proc = listener
      return (pred, what) =>
        new Promise((resolve, reject) => {
          const check = () => {
            const ev = events.find(pred)
            if (ev) resolve(ev)
          }
          waiters.push(check)
          check()
          proc.once('exit', (code) => reject(new Error(`privateline listen exited (${code}) before ${what}:\n${stderr}`)))
          setTimeout(() => reject(new Error(`privateline listen printed no ${what} within ${timeout} ms:\n${stderr}`)), timeout)
        })
    },
    close() {
      listener?.kill('SIGINT')
      rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    run('listen', 'register', name)
    // A second device of the same account sends while the first listens
    // (each command holds its config directory's lock while it runs).
    run('send', 'login', name)
  } catch (err) {
    account.close()
    throw err
  }
  return account
}
