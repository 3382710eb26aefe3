// Screenshots of two federated homeservers for docs/federation.md, taken
// against `make federation` (already running): alice registers on
// http://localhost:8081, bob on http://localhost:8082, each in a Chromium
// profile of their own; they chat across the servers.
//
//     make federation                                   # in one terminal
//     cd clients/web && node e2e/federation-screenshots.mjs [OUTDIR]
//
// OUTDIR defaults to docs/screenshots (federation-alice.png,
// federation-bob.png). The users are alice and bob, so run it on fresh
// servers (delete data/federation first). Not a test: it asserts only what
// the walk needs.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium } from './harness.mjs'
import { expectMessage, expectStatus, openConversation, register, send, startChat } from './users.mjs'

const out = process.argv[2] || fileURLToPath(new URL('../../../docs/screenshots', import.meta.url))
mkdirSync(out, { recursive: true })
const REMOTE = 40_000

const browser = await launchChromium()
try {
  const open = async (url) => {
    const context = await browser.newContext({ baseURL: url, viewport: { width: 1100, height: 640 } })
    context.setDefaultTimeout(30_000)
    const page = await context.newPage()
    page.on('pageerror', (e) => console.error(`${url}: ${e.message}`))
    await page.goto('/register')
    return page
  }
  const alice = await open('http://localhost:8081')
  const bob = await open('http://localhost:8082')
  await register(alice, 'alice')
  await register(bob, 'bob')

  // What a new user sees when starting a chat with someone on another server.
  await alice.getByRole('button', { name: 'New chat' }).click()
  await alice.getByRole('dialog').getByRole('textbox', { name: 'Address' }).fill('bob@localhost:8082')
  await alice.screenshot({ path: join(out, 'federation-new-chat.png') })
  await alice.keyboard.press('Escape')
  await alice.getByRole('dialog').waitFor({ state: 'detached' })

  await startChat(alice, 'bob@localhost:8082')
  await send(alice, 'Hi Bob! This went from localhost:8081 to localhost:8082.')
  await expectStatus(alice, 'Hi Bob! This went from localhost:8081 to localhost:8082.', 'Delivered', REMOTE)
  await openConversation(bob, 'alice@localhost:8081')
  await expectMessage(bob, 'Hi Bob! This went from localhost:8081 to localhost:8082.', REMOTE)
  await send(bob, 'Hello Alice, got it on my own server.')
  await expectMessage(alice, 'Hello Alice, got it on my own server.', REMOTE)
  await expectStatus(bob, 'Hello Alice, got it on my own server.', 'Delivered', REMOTE)
  await send(alice, 'Each of us keeps our keys on our own homeserver.')
  await expectMessage(bob, 'Each of us keeps our keys on our own homeserver.', REMOTE)
  // Both have the chat open: the last messages are read across servers.
  await expectStatus(alice, 'Each of us keeps our keys on our own homeserver.', 'Read', REMOTE)
  await expectStatus(bob, 'Hello Alice, got it on my own server.', 'Read', REMOTE)

  await alice.screenshot({ path: join(out, 'federation-alice.png') })
  await bob.screenshot({ path: join(out, 'federation-bob.png') })
  console.log(`saved federation-alice.png, federation-bob.png and federation-new-chat.png in ${out}`)
} finally {
  await browser.close()
}
