// Federation as users see it: two real homeservers federated over QUIC on
// loopback, alice on the first and bob on the second, each in a Chromium
// context of their own served by their own server. They chat both ways in
// real time, see "Delivered" when the other server has stored a message
// and "Read" when the other has read it, verify each other by QR code
// across servers; a picture shows on the other server (its server fetches
// the file from the sender's on the first view); a message to a server that stays down says
// "Waiting for <server>", then ends "Failed" with the reason; the privateline CLI on the second server
// talks to a browser user on the first; and a group has members on both.
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import http from 'node:http'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { cliAccount } from './cli.mjs'
import { World, launchChromium, startHomeserver } from './harness.mjs'
import {
  DELIVERY_TIMEOUT,
  chatHeading,
  conversationLink,
  expectMessage,
  expectStatus,
  message,
  messageLog,
  openConversation,
  register,
  send,
  startChat,
  waitUntil,
} from './users.mjs'

/** A cross-server message: a key look-up over the link and a transaction each way. */
const REMOTE_TIMEOUT = 40_000
const slow = { timeout: 240_000 }

/** A port that was free a moment ago on 127.0.0.1 (TCP or UDP). */
async function freePort(kind) {
  if (kind === 'udp') {
    const s = dgram.createSocket('udp4')
    await new Promise((resolve, reject) => (s.once('error', reject), s.bind(0, '127.0.0.1', resolve)))
    const { port } = s.address()
    await new Promise((resolve) => s.close(resolve))
    return port
  }
  const s = net.createServer()
  await new Promise((resolve, reject) => (s.once('error', reject), s.listen(0, '127.0.0.1', resolve)))
  const { port } = s.address()
  await new Promise((resolve) => s.close(resolve))
  return port
}

/**
 * Two homeservers named localhost:<http port>, each federating on a UDP
 * port of its own and told the other's (FEDERATION_PEERS, keys pinned on
 * first contact). The ports are chosen before the start because each
 * server's peer list names the other's.
 */
async function startPair(env = {}) {
  const http = [await freePort('tcp'), await freePort('tcp')]
  const udp = [await freePort('udp'), await freePort('udp')]
  const names = http.map((p) => `localhost:${p}`)
  const servers = []
  try {
    for (const i of [0, 1]) {
      const j = 1 - i
      servers.push(
        await startHomeserver({
          serverName: names[i],
          env: {
            LISTEN_ADDR: `127.0.0.1:${http[i]}`,
            FEDERATION_LISTEN_ADDR: `127.0.0.1:${udp[i]}`,
            FEDERATION_PEERS: `${names[j]}=127.0.0.1:${udp[j]}`,
            // A message the other server refuses or never takes is
            // reported within the test, not after three days.
            FEDERATION_DELIVERY_TIMEOUT: '2m',
            ...env,
          },
        }),
      )
    }
  } catch (err) {
    for (const s of servers) await s.stop()
    throw err
  }
  return servers
}

const shared = { browser: null, servers: [] }
before(async () => {
  shared.browser = await launchChromium()
  shared.servers = await startPair()
})
after(async () => {
  await shared.browser?.close()
  for (const s of shared.servers) await s.stop()
})

/**
 * A test with a World per server (users of server i are made with
 * worlds[i]); with pairEnv, on a pair of servers of its own started with
 * that environment (and stopped after the test).
 */
function e2e(name, fn, { timeout = 120_000, pairEnv } = {}) {
  test(name, { timeout }, async (t) => {
    const own = pairEnv ? await startPair(pairEnv) : null
    const worlds = (own ?? shared.servers).map((s) => new World(shared.browser, s, t))
    try {
      await fn(worlds)
      for (const w of worlds) w.assertNoPageErrors()
    } catch (err) {
      for (const w of worlds) {
        await w.screenshot(name)
        w.report()
      }
      throw err
    } finally {
      for (const w of worlds) await w.close()
      for (const s of own ?? []) await s.stop()
    }
  })
}

/** Registers a new user on w's server in a browser context of their own. */
async function newUser(w, base) {
  const u = await w.user(base, '/register')
  await register(u.page, u.username)
  return u
}

/** alice (server 1) writes to bob (server 2); bob opens the conversation. */
async function connected([w1, w2]) {
  const alice = await newUser(w1, 'alice')
  const bob = await newUser(w2, 'bob')
  await startChat(alice.page, bob.address)
  await send(alice.page, `Hello ${bob.username}, from the other server`)
  await openConversation(bob.page, alice.address)
  await expectMessage(bob.page, `Hello ${bob.username}, from the other server`, REMOTE_TIMEOUT)
  return { alice, bob }
}

async function openVerify(page, peer) {
  await page.getByRole('button', { name: 'Conversation details' }).click()
  await page.getByRole('button', { name: 'Verify', exact: true }).click()
  const dialog = page.getByRole('dialog', { name: `Verify ${peer}` })
  await dialog.waitFor()
  return dialog
}

/**
 * Opens the verify dialog until it says that the other homeserver vouches
 * for this one's key directory (it co-signs the head within seconds of a
 * registration, spec/federation.md §12.6), and returns the open dialog.
 */
async function openVerifyVouched(page, peer) {
  const witness = peer.slice(peer.lastIndexOf('@') + 1)
  const text = `1 other server vouches for your server’s key directory: ${witness}.`
  const deadline = Date.now() + REMOTE_TIMEOUT
  for (;;) {
    const dialog = await openVerify(page, peer)
    await dialog.getByTestId('safety-number').waitFor()
    const said = dialog.getByText(/server’s key directory/)
    await said.waitFor()
    if ((await said.innerText()) === text) return dialog
    if (Date.now() > deadline) assert.fail(`the verify dialog still says: ${await said.innerText()}`)
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
  }
}

e2e(
  'users on two homeservers chat both ways in real time and see "Delivered" and "Read"',
  async (worlds) => {
    const [w1, w2] = worlds
    const alice = await newUser(w1, 'alice')
    const bob = await newUser(w2, 'bob')
    assert.notEqual(alice.address.split('@')[1], bob.address.split('@')[1], 'alice and bob are on different servers')

    await startChat(alice.page, bob.address)
    await send(alice.page, 'Hi Bob, across servers')
    // Delivered: bob's server stored it (its signed receipt reached alice's).
    await expectStatus(alice.page, 'Hi Bob, across servers', 'Delivered', REMOTE_TIMEOUT)

    // Bob did not reload: the conversation appears with an unread badge.
    const link = conversationLink(bob.page, alice.address)
    await link.waitFor({ timeout: REMOTE_TIMEOUT })
    await bob.page.getByRole('navigation', { name: 'Conversations' }).getByLabel('1 unread').waitFor({ timeout: DELIVERY_TIMEOUT })
    await link.click()
    await chatHeading(bob.page, alice.address).waitFor()
    await expectMessage(bob.page, 'Hi Bob, across servers')
    // Bob has read it: his read mark crosses back to alice's screen.
    await expectStatus(alice.page, 'Hi Bob, across servers', 'Read', REMOTE_TIMEOUT)

    // And back, while both have the chat open.
    await send(bob.page, 'Hi Alice, Bob here')
    await expectMessage(alice.page, 'Hi Alice, Bob here', REMOTE_TIMEOUT)
    // Alice has the chat open, so she reads it at once: her read mark may
    // reach bob's server before the receipt of the envelope does, and the
    // status then goes straight to "Read" (which includes delivered).
    await expectStatus(bob.page, 'Hi Alice, Bob here', /^(Delivered|Read)$/, REMOTE_TIMEOUT)
    await send(alice.page, 'Second from Alice')
    await expectMessage(bob.page, 'Second from Alice', REMOTE_TIMEOUT)
    await send(bob.page, 'Second from Bob')
    await expectMessage(alice.page, 'Second from Bob', REMOTE_TIMEOUT)
    // Each has the chat open: both last messages are read, across servers.
    await expectStatus(bob.page, 'Second from Bob', 'Read', REMOTE_TIMEOUT)
    await expectStatus(alice.page, 'Second from Alice', 'Read', REMOTE_TIMEOUT)

    // In order on both screens.
    for (const page of [alice.page, bob.page]) {
      const texts = await messageLog(page).getByRole('article').allInnerTexts()
      const order = ['Hi Bob, across servers', 'Hi Alice, Bob here', 'Second from Alice', 'Second from Bob'].map((s) =>
        texts.findIndex((t) => t.includes(s)),
      )
      assert.deepEqual([...order].sort((a, b) => a - b), order, `messages out of order: ${JSON.stringify(texts)}`)
      assert.ok(order.every((i) => i >= 0), `a message is missing: ${JSON.stringify(texts)}`)
    }
    // No failure, no error anywhere.
    for (const page of [alice.page, bob.page]) {
      assert.equal(await messageLog(page).getByLabel('Failed', { exact: true }).count(), 0)
      assert.equal(await page.getByRole('alert').count(), 0, 'an alert on screen')
    }
  },
  slow,
)

e2e(
  'users on two homeservers verify each other by QR code',
  async (worlds) => {
    const { alice, bob } = await connected(worlds)
    // Each homeserver's key directory is co-signed by the other, and the
    // dialog says so once the co-signature covers the current head.
    const aliceDialog = await openVerifyVouched(alice.page, bob.address)
    const bobDialog = await openVerifyVouched(bob.page, alice.address)
    const aliceNumber = (await aliceDialog.getByTestId('safety-number').innerText()).replace(/\s+/g, ' ').trim()
    const bobNumber = (await bobDialog.getByTestId('safety-number').innerText()).replace(/\s+/g, ' ').trim()
    assert.match(aliceNumber.replace(/\s/g, ''), /^\d{60}$/, `safety number ${aliceNumber}`)
    assert.equal(aliceNumber, bobNumber, 'both see the same safety number')
    assert.equal(await bob.page.getByText('Verified', { exact: true }).count(), 0, 'Bob sees "Verified" before scanning')

    const aliceQR = await aliceDialog.getByRole('img', { name: 'Your safety code' }).screenshot()
    const bobQR = await bobDialog.getByRole('img', { name: 'Your safety code' }).screenshot()
    await bobDialog.getByLabel('Scan QR image').setInputFiles({ name: 'alice-qr.png', mimeType: 'image/png', buffer: aliceQR })
    await bob.page.getByText('Verified', { exact: true }).first().waitFor({ timeout: DELIVERY_TIMEOUT })
    await aliceDialog.getByLabel('Scan QR image').setInputFiles({ name: 'bob-qr.png', mimeType: 'image/png', buffer: bobQR })
    await alice.page.getByText('Verified', { exact: true }).first().waitFor({ timeout: DELIVERY_TIMEOUT })

    // Verified contacts still talk.
    for (const p of [alice.page, bob.page]) {
      await p.keyboard.press('Escape')
      await p.getByRole('dialog').waitFor({ state: 'detached' })
    }
    await send(bob.page, 'Verified hello')
    await expectMessage(alice.page, 'Verified hello', REMOTE_TIMEOUT)
  },
  slow,
)

e2e(
  'a picture from another homeserver shows: the recipient\'s server fetches it from the sender\'s',
  async (worlds) => {
    const { alice, bob } = await connected(worlds)
    const dataURL = await alice.page.evaluate(() => {
      const c = document.createElement('canvas')
      c.width = 48
      c.height = 32
      const g = c.getContext('2d')
      g.fillStyle = '#1976d2'
      g.fillRect(0, 0, 48, 32)
      return c.toDataURL('image/png')
    })
    const png = Buffer.from(dataURL.split(',')[1], 'base64')
    await alice.page.getByLabel('Attach file').setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: png })
    await alice.page.getByRole('textbox', { name: 'Message' }).fill('a picture across servers')
    await alice.page.getByRole('button', { name: 'Send' }).click()
    await message(alice.page, 'a picture across servers').waitFor()

    // Bob gets the text and the picture, decrypted and decoded: 48 × 32 pixels of blue.
    const got = message(bob.page, 'a picture across servers')
    await got.waitFor({ timeout: REMOTE_TIMEOUT })
    const img = got.getByRole('img', { name: 'blue.png' })
    await img.waitFor({ timeout: DELIVERY_TIMEOUT })
    await waitUntil(() => img.evaluate((el) => el.complete && el.naturalWidth > 0), { what: 'the picture to decode' })
    const shown = await img.evaluate((el) => {
      const c = document.createElement('canvas')
      c.width = el.naturalWidth
      c.height = el.naturalHeight
      const g = c.getContext('2d')
      g.drawImage(el, 0, 0)
      return { w: el.naturalWidth, h: el.naturalHeight, px: Array.from(g.getImageData(10, 10, 1, 1).data) }
    })
    assert.deepEqual(shown, { w: 48, h: 32, px: [0x19, 0x76, 0xd2, 255] }, 'the picture as bob sees it')
    assert.equal(await got.getByRole('alert').count(), 0, 'no error in place of the picture')
    // The app still works: bob answers.
    await send(bob.page, 'Got the picture')
    await expectMessage(alice.page, 'Got the picture', REMOTE_TIMEOUT)
  },
  slow,
)

e2e(
  'a message to a homeserver that stays down is marked "Failed" with a sentence saying why, and Retry sends it again',
  async (worlds) => {
    const { alice, bob } = await connected(worlds)
    // Bob's server goes away for longer than FEDERATION_DELIVERY_TIMEOUT.
    await worlds[1].close()
    await worlds[1].server.stop()
    await send(alice.page, 'Anyone there?')
    const failed = message(alice.page, 'Anyone there?')
    const server2 = bob.address.split('@')[1]
    // First it says what it waits for (her server could not reach bob's yet) …
    await failed.getByLabel(`Waiting for ${server2}`, { exact: true }).waitFor({ timeout: 30_000 })
    // … then, past the delivery timeout, that it failed.
    await failed.getByLabel('Failed', { exact: true }).waitFor({ timeout: 90_000 })
    await alice.page.getByText(`Not delivered: ${server2} could not be reached for too long`, { exact: false }).waitFor()
    // The earlier message, which bob read, stays read.
    await expectStatus(alice.page, `Hello ${bob.username}, from the other server`, 'Read')

    // Retry sends the text again as a new message in its place (the
    // server still cannot be reached, so it fails again the same way).
    await failed.getByRole('button', { name: 'Retry' }).click()
    await waitUntil(
      async () =>
        (await message(alice.page, 'Anyone there?').count()) === 1 &&
        (await failed.getByLabel('Failed', { exact: true }).count()) === 0 &&
        (await alice.page.getByText('could not be reached for too long').count()) === 0,
      { what: 'the retried message to be on its way, in place of the failed one' },
    )
    await failed.getByLabel('Failed', { exact: true }).waitFor({ timeout: 90_000 })
    await alice.page.getByText(`Not delivered: ${server2} could not be reached for too long`, { exact: false }).waitFor()
    assert.equal(await message(alice.page, 'Anyone there?').count(), 1, 'the failed message and its retry both on screen')
  },
  { timeout: 240_000, pairEnv: { FEDERATION_DELIVERY_TIMEOUT: '5s' } },
)

e2e(
  'a long address of another server stays apart from the same name on this one at phone width; an unknown user or server gets a clear sentence',
  async ([w1, w2]) => {
    const alice = await newUser(w1, 'alice')
    // The same long name on both servers: the addresses differ only in the server.
    const remote = await newUser(w2, 'someone.with.a.rather.long.name')
    const { page: localPage } = await w1.newPage('local namesake')
    await localPage.goto('/register')
    await register(localPage, remote.username)
    const local = { address: `${remote.username}@${w1.server.serverName}` }

    // Clear sentences for an address that leads nowhere.
    await alice.page.getByRole('button', { name: 'New chat' }).click()
    const dialog = alice.page.getByRole('dialog')
    const address = dialog.getByRole('textbox', { name: 'Address' })
    await address.fill(`nobody-here@${w2.server.serverName}`)
    await dialog.getByRole('button', { name: 'Start chat' }).click()
    await dialog.getByRole('alert').filter({ hasText: `There is no user nobody-here@${w2.server.serverName}.` }).waitFor({ timeout: REMOTE_TIMEOUT })
    await address.fill('someone@localhost:1')
    await dialog.getByRole('button', { name: 'Start chat' }).click()
    await dialog.getByRole('alert').filter({ hasText: 'localhost:1 cannot be reached right now. Check the address, or try again later.' }).waitFor({ timeout: REMOTE_TIMEOUT })
    // A web server that is not a PrivateLine server (no server document):
    // there is no server of that name, which the user can correct.
    const notPL = http.createServer((_req, res) => res.writeHead(404).end('not found'))
    await new Promise((resolve, reject) => (notPL.once('error', reject), notPL.listen(0, '127.0.0.1', resolve)))
    try {
      const name = `localhost:${notPL.address().port}`
      await address.fill(`someone@${name}`)
      await dialog.getByRole('button', { name: 'Start chat' }).click()
      await dialog.getByRole('alert').filter({ hasText: `There is no server ${name}. Check the address.` }).waitFor({ timeout: REMOTE_TIMEOUT })
    } finally {
      await new Promise((resolve) => notPL.close(resolve))
    }
    await dialog.getByRole('button', { name: 'Cancel' }).click()

    await startChat(alice.page, remote.address)
    await send(alice.page, 'Hello, other server')
    await startChat(alice.page, local.address)
    await send(alice.page, 'Hello, this server')

    // At phone width: each conversation is named by its full address, and
    // the end of each server shows whole (the local part gives way).
    await alice.page.setViewportSize({ width: 375, height: 740 })
    await chatHeading(alice.page, local.address).waitFor()
    await alice.page.getByRole('button', { name: 'Open conversations' }).click()
    const shown = []
    for (const a of [remote.address, local.address]) {
      const link = conversationLink(alice.page, a)
      await link.waitFor()
      shown.push(
        await link.evaluate((el) => {
          const box = el.getBoundingClientRect()
          const parts = [...el.querySelectorAll('[data-part]')]
          const tail = parts.at(-1)
          const t = tail.getBoundingClientRect()
          return {
            tail: tail.getAttribute('data-part'),
            whole: tail.scrollWidth <= tail.clientWidth && t.left >= box.left && t.right <= box.right,
            width: window.innerWidth,
          }
        }),
      )
    }
    assert.deepEqual(
      shown,
      [
        { tail: w2.server.serverName, whole: true, width: 375 },
        { tail: w1.server.serverName, whole: true, width: 375 },
      ],
      'the servers as the sidebar shows them at 375 px',
    )
    await conversationLink(alice.page, remote.address).click()
    await chatHeading(alice.page, remote.address).waitFor()
    await expectMessage(alice.page, 'Hello, other server')
    // The verify dialog wraps the long address inside itself.
    const verify = await openVerify(alice.page, remote.address)
    await verify.getByTestId('safety-number').waitFor({ timeout: REMOTE_TIMEOUT })
    const overflow = await verify.evaluate((el) => [...el.querySelectorAll('*')].filter((x) => x.textContent.trim() !== '' && x.scrollWidth > x.clientWidth + 1 && getComputedStyle(x).overflowX !== 'hidden').map((x) => x.textContent.slice(0, 60)))
    assert.deepEqual(overflow, [], 'nothing in the verify dialog reaches past its edge at 375 px')
  },
  slow,
)

e2e(
  'the privateline CLI on one homeserver and a browser user on the other exchange messages both ways',
  async ([w1, w2]) => {
    const cli = cliAccount(shared.servers[1].url, shared.servers[1].serverName)
    try {
      const web = await newUser(w1, 'web')
      const cliAddress = cli.address
      const run = cli.run
      const nextEvent = cli.listen(REMOTE_TIMEOUT)
      await nextEvent((e) => e.type === 'ready', 'ready')

      // Browser (server 1) → terminal (server 2).
      await startChat(web.page, cliAddress)
      await send(web.page, 'Hello terminal on the other server')
      const got = await nextEvent((e) => e.type === 'message' && e.message?.text === 'Hello terminal on the other server', 'the message')
      assert.equal(got.message.from, web.address)
      assert.equal(got.message.error, undefined)
      await expectStatus(web.page, 'Hello terminal on the other server', 'Delivered', REMOTE_TIMEOUT)

      // Terminal → browser, without a reload.
      run('send', 'send', web.address, 'Hello browser on the other server')
      await expectMessage(web.page, 'Hello browser on the other server', REMOTE_TIMEOUT)
      const history = JSON.parse(run('send', '--json', 'history', '--with', web.address))
      assert.ok(
        history.messages.some((m) => m.text === 'Hello terminal on the other server' && m.from === web.address),
        `the CLI's history lacks the browser's message: ${JSON.stringify(history).slice(0, 500)}`,
      )
    } finally {
      cli.close()
    }
  },
  slow,
)

e2e(
  'a group with members on both homeservers: everyone reads everyone; one who leaves gets nothing new',
  async ([w1, w2]) => {
    const alice = await newUser(w1, 'alice')
    const ann = await newUser(w1, 'ann')
    const bob = await newUser(w2, 'bob')
    await alice.page.getByRole('button', { name: 'New group' }).click()
    const dialog = alice.page.getByRole('dialog')
    await dialog.getByRole('textbox', { name: 'Group name' }).fill('Across')
    await dialog.getByRole('textbox', { name: 'Members' }).fill(`${bob.address}, ${ann.address}`)
    await dialog.getByRole('button', { name: 'Create group' }).click()
    await chatHeading(alice.page, 'Across').waitFor({ timeout: REMOTE_TIMEOUT })
    await send(alice.page, 'Welcome, both servers')

    for (const u of [bob, ann]) {
      await openConversation(u.page, 'Across')
      await expectMessage(u.page, 'Welcome, both servers', REMOTE_TIMEOUT)
    }
    // bob's message goes through his server to the group's, and back out.
    await send(bob.page, 'Hello from the other server')
    await send(ann.page, 'Hello from the group’s server')
    for (const u of [alice, bob, ann]) {
      await expectMessage(u.page, 'Hello from the other server', REMOTE_TIMEOUT)
      await expectMessage(u.page, 'Hello from the group’s server', REMOTE_TIMEOUT)
    }
    // The members, as bob's details show them (from his server's copy).
    await bob.page.getByRole('button', { name: 'Conversation details' }).click()
    for (const a of [alice.address, bob.address, ann.address]) {
      await bob.page.getByRole('listitem').filter({ hasText: a }).first().waitFor({ timeout: REMOTE_TIMEOUT })
    }
    // bob leaves (his server asks the group's): he is gone from alice's
    // member list, and what is written after does not reach him.
    await bob.page.getByRole('button', { name: 'Leave group' }).click()
    await alice.page.getByRole('button', { name: 'Conversation details' }).click()
    await alice.page.getByRole('listitem').filter({ hasText: ann.address }).first().waitFor()
    await waitUntil(async () => (await alice.page.getByRole('listitem').filter({ hasText: bob.address }).count()) === 0, {
      timeout: REMOTE_TIMEOUT,
      what: 'bob gone from alice’s member list',
    })
    await alice.page.keyboard.press('Escape') // the details drawer closes
    await send(alice.page, 'After bob left')
    await expectMessage(ann.page, 'After bob left', REMOTE_TIMEOUT)
    await openConversation(bob.page, 'Across')
    await expectMessage(bob.page, 'Hello from the group’s server')
    assert.equal(await message(bob.page, 'After bob left').count(), 0, 'bob got a message written after he left')
  },
  slow,
)
