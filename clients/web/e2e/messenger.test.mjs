// The messenger as users see it, in Chromium against a real homeserver:
// accounts, real-time chat with read marks, verification by QR code,
// pictures, groups, disappearing messages, offline use, accessibility of
// every screen, and a browser user talking to a Go SDK user (the
// privateline CLI). The screens are found by the accessible names of
// UI-CONTRACT.md (see users.mjs).

import assert from 'node:assert/strict'
import { cliAccount } from './cli.mjs'
import { PASSWORD, expectAccessible, suite } from './harness.mjs'
import {
  DELIVERY_TIMEOUT,
  chatHeading,
  conversationLink,
  expectMessage,
  expectStatus,
  fillLogin,
  message,
  messageLog,
  openConversation,
  register,
  send,
  startChat,
  waitForMain,
  waitUntil,
} from './users.mjs'

const e2e = suite()
const slow = { timeout: 240_000 }

/** Registers a new user in a browser context of their own. */
async function newUser(w, base) {
  const u = await w.user(base, '/register')
  await register(u.page, u.username)
  return u
}

/** bob opens a chat with alice and says hello; alice opens it. */
async function connected(w) {
  const [alice, bob] = [await newUser(w, 'alice'), await newUser(w, 'bob')]
  await startChat(bob.page, alice.address)
  await send(bob.page, `Hello ${alice.username}`)
  await openConversation(alice.page, bob.address)
  await expectMessage(alice.page, `Hello ${alice.username}`)
  return { alice, bob }
}

/** Opens the verify dialog for the chat's peer: Conversation details → Verify. */
async function openVerify(page, peer) {
  await page.getByRole('button', { name: 'Conversation details' }).click()
  await page.getByRole('button', { name: 'Verify', exact: true }).click()
  const dialog = page.getByRole('dialog', { name: `Verify ${peer}` })
  await dialog.waitFor()
  return dialog
}

e2e(
  'two users chat in real time and see read marks',
  async (w) => {
    const alice = await newUser(w, 'alice')
    const bob = await newUser(w, 'bob')
    await startChat(bob.page, alice.address)
    await send(bob.page, 'Hi Alice, it is Bob')
    await expectStatus(bob.page, 'Hi Alice, it is Bob', 'Sent').catch(() =>
      expectStatus(bob.page, 'Hi Alice, it is Bob', 'Delivered'),
    )

    // Alice did not reload: the conversation appears with an unread badge.
    const link = conversationLink(alice.page, bob.address)
    await link.waitFor({ timeout: DELIVERY_TIMEOUT })
    await alice.page.getByRole('navigation', { name: 'Conversations' }).getByLabel('1 unread').waitFor({ timeout: DELIVERY_TIMEOUT })
    await link.click()
    await expectMessage(alice.page, 'Hi Alice, it is Bob')

    // Having read it, Alice's read mark reaches Bob's screen.
    await expectStatus(bob.page, 'Hi Alice, it is Bob', 'Read')

    await send(alice.page, 'Hello Bob!')
    await expectMessage(bob.page, 'Hello Bob!')
    await send(bob.page, 'Line one')
    await expectMessage(alice.page, 'Line one')
    await expectStatus(bob.page, 'Line one', 'Read')
    // Bob reads Alice's message by having the chat open.
    await expectStatus(alice.page, 'Hello Bob!', 'Read')
    // No error text anywhere.
    assert.equal(await alice.page.getByRole('alert').count(), 0, 'an alert on Alice’s screen')
  },
  slow,
)

e2e(
  'two users verify each other by scanning the QR code of the other’s screen',
  async (w) => {
    const { alice, bob } = await connected(w)

    const aliceDialog = await openVerify(alice.page, bob.address)
    const bobDialog = await openVerify(bob.page, alice.address)
    const aliceNumber = (await aliceDialog.getByTestId('safety-number').innerText()).replace(/\s+/g, ' ').trim()
    const bobNumber = (await bobDialog.getByTestId('safety-number').innerText()).replace(/\s+/g, ' ').trim()
    assert.match(aliceNumber.replace(/\s/g, ''), /^\d{60}$/, `safety number ${aliceNumber}`)
    assert.equal(aliceNumber, bobNumber, 'both see the same safety number')
    await expectAccessible(alice.page, 'the verify dialog')

    // Neither is verified yet.
    assert.equal(await bob.page.getByText('Verified', { exact: true }).count(), 0, 'Bob sees "Verified" before scanning')
    // Bob scans Alice's code (a picture of her screen).
    const aliceQR = await aliceDialog.getByRole('img', { name: 'Your safety code' }).screenshot()
    await bobDialog.getByLabel('Scan QR image').setInputFiles({ name: 'alice-qr.png', mimeType: 'image/png', buffer: aliceQR })
    await bob.page.getByText('Verified', { exact: true }).first().waitFor({ timeout: DELIVERY_TIMEOUT })

    // And Alice scans Bob's.
    const bobQR = await bob.page.getByRole('img', { name: 'Your safety code' }).screenshot().catch(async () => {
      // Bob's dialog may have closed on success: open it again.
      return (await openVerify(bob.page, alice.address)).getByRole('img', { name: 'Your safety code' }).screenshot()
    })
    await aliceDialog.getByLabel('Scan QR image').setInputFiles({ name: 'bob-qr.png', mimeType: 'image/png', buffer: bobQR })
    await alice.page.getByText('Verified', { exact: true }).first().waitFor({ timeout: DELIVERY_TIMEOUT })

    // A code of someone else is refused, not taken as a match.
    for (const p of [alice.page, bob.page]) {
      await p.keyboard.press('Escape')
      await p.getByRole('dialog').waitFor({ state: 'detached' })
    }
    const carol = await newUser(w, 'carol')
    await startChat(carol.page, bob.address)
    const carolQR = await (await openVerify(carol.page, bob.address)).getByRole('img', { name: 'Your safety code' }).screenshot()
    await startChat(alice.page, carol.address)
    const aliceCarol = await openVerify(alice.page, carol.address)
    await aliceCarol.getByLabel('Scan QR image').setInputFiles({ name: 'wrong.png', mimeType: 'image/png', buffer: carolQR })
    await alice.page.getByRole('alert').first().waitFor({ timeout: DELIVERY_TIMEOUT })
    await aliceCarol.getByRole('button', { name: 'Mark as verified' }).waitFor()
  },
  slow,
)

e2e(
  'a picture sent by one user is shown, decrypted, to the other',
  async (w) => {
    const { alice, bob } = await connected(w)
    // A real PNG, drawn in the page.
    const dataURL = await alice.page.evaluate(() => {
      const c = document.createElement('canvas')
      c.width = 48
      c.height = 32
      const g = c.getContext('2d')
      g.fillStyle = '#d32f2f'
      g.fillRect(0, 0, 48, 32)
      g.fillStyle = '#ffffff'
      g.fillRect(8, 8, 16, 16)
      return c.toDataURL('image/png')
    })
    const png = Buffer.from(dataURL.split(',')[1], 'base64')
    await alice.page.getByLabel('Attach file').setInputFiles({ name: 'red-square.png', mimeType: 'image/png', buffer: png })
    const box = alice.page.getByRole('textbox', { name: 'Message' })
    await box.fill('a picture')
    await alice.page.getByRole('button', { name: 'Send' }).click()

    for (const page of [alice.page, bob.page]) {
      const img = messageLog(page).locator('img[alt="red-square.png"]')
      await img.waitFor({ timeout: DELIVERY_TIMEOUT })
      const size = await waitUntil(
        () => img.evaluate((el) => (el.complete && el.naturalWidth > 0 ? `${el.naturalWidth}x${el.naturalHeight}` : '')),
        { what: 'the picture to be decoded' },
      )
      assert.equal(size, '48x32')
    }
  },
  slow,
)

e2e(
  'a group of three: everyone sees everyone’s messages',
  async (w) => {
    const alice = await newUser(w, 'alice')
    const bob = await newUser(w, 'bob')
    const carol = await newUser(w, 'carol')
    await alice.page.getByRole('button', { name: 'New group' }).click()
    const dialog = alice.page.getByRole('dialog')
    await dialog.getByRole('textbox', { name: 'Group name' }).fill('Team')
    await dialog.getByRole('textbox', { name: 'Members' }).fill(`${bob.address}, ${carol.address}`)
    await expectAccessible(alice.page, 'the new group dialog')
    await dialog.getByRole('button', { name: 'Create group' }).click()
    await chatHeading(alice.page, 'Team').waitFor({ timeout: DELIVERY_TIMEOUT })
    await send(alice.page, 'Welcome to the team')

    for (const u of [bob, carol]) {
      await openConversation(u.page, 'Team')
      await expectMessage(u.page, 'Welcome to the team')
    }
    await send(bob.page, 'Thanks, from Bob')
    await send(carol.page, 'Hi all, Carol here')
    for (const u of [alice, bob, carol]) {
      await expectMessage(u.page, 'Thanks, from Bob')
      await expectMessage(u.page, 'Hi all, Carol here')
    }
    // The members, as the details show them.
    await alice.page.getByRole('button', { name: 'Conversation details' }).click()
    for (const a of [alice.address, bob.address, carol.address]) {
      await alice.page.getByRole('listitem').filter({ hasText: a }).first().waitFor()
    }
  },
  slow,
)

e2e(
  'a message with the 5-second timer disappears on both sides',
  async (w) => {
    const { alice, bob } = await connected(w)
    await bob.page.getByRole('combobox', { name: 'Disappearing timer' }).click()
    await bob.page.getByRole('option', { name: '5 seconds', exact: true }).click()
    await send(bob.page, 'This message self-destructs')
    await expectMessage(alice.page, 'This message self-destructs')
    // Gone from both screens (5 s, with room for a slow machine), while
    // the earlier message stays.
    for (const u of [alice, bob]) {
      await message(u.page, 'This message self-destructs').waitFor({ state: 'detached', timeout: 30_000 })
      await expectMessage(u.page, `Hello ${alice.username}`)
    }
  },
  slow,
)

e2e(
  'offline: history stays visible after a reload, a message written offline is queued and goes when back online',
  async (w) => {
    const { alice, bob } = await connected(w)
    await send(alice.page, 'Before Bob went offline')
    await expectMessage(bob.page, 'Before Bob went offline')
    // The service worker must be in control before the network goes.
    await bob.page.evaluate(async () => {
      await navigator.serviceWorker.ready
      if (!navigator.serviceWorker.controller) {
        await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }))
      }
    })

    await bob.context.setOffline(true)
    await bob.page.reload()
    await chatHeading(bob.page, alice.address).waitFor({ timeout: DELIVERY_TIMEOUT })
    await expectMessage(bob.page, `Hello ${alice.username}`)
    await expectMessage(bob.page, 'Before Bob went offline')
    await bob.page.getByRole('status').filter({ hasText: 'Offline' }).first().waitFor({ timeout: DELIVERY_TIMEOUT })

    await bob.page.getByRole('textbox', { name: 'Message' }).fill('Written while offline')
    await bob.page.getByRole('button', { name: 'Send' }).click()
    await expectStatus(bob.page, 'Written while offline', 'Queued')
    assert.equal(await message(alice.page, 'Written while offline').count(), 0)

    await bob.context.setOffline(false)
    await expectMessage(alice.page, 'Written while offline', 60_000)
    await waitUntil(async () => (await message(bob.page, 'Written while offline').getByLabel('Queued', { exact: true }).count()) === 0, {
      what: 'Bob’s message to leave the queue',
      timeout: 60_000,
    })
    // Nothing of the API is in the service worker's cache.
    const cached = await bob.page.evaluate(async () => {
      const paths = []
      for (const name of await caches.keys()) for (const r of await (await caches.open(name)).keys()) paths.push(new URL(r.url).pathname)
      return paths
    })
    assert.deepEqual(cached.filter((p) => p.startsWith('/api')), [])
  },
  slow,
)

e2e(
  'every screen has no serious or critical accessibility violation',
  async (w) => {
    const alice = await w.user('alice', '/register')
    await alice.page.getByRole('textbox', { name: 'Username' }).waitFor()
    await expectAccessible(alice.page, 'the register screen')
    await register(alice.page, alice.username)
    await expectAccessible(alice.page, 'the main screen')

    const bob = await newUser(w, 'bob')
    await bob.page.getByRole('button', { name: 'New chat' }).click()
    await bob.page.getByRole('dialog').getByRole('textbox', { name: 'Address' }).fill(alice.address)
    await expectAccessible(bob.page, 'the new chat dialog')
    await bob.page.getByRole('dialog').getByRole('button', { name: 'Start chat' }).click()
    await chatHeading(bob.page, alice.address).waitFor({ timeout: DELIVERY_TIMEOUT })
    await send(bob.page, 'Accessible hello')
    await expectAccessible(bob.page, 'the chat screen')
    await bob.page.getByRole('button', { name: 'Conversation details' }).click()
    await bob.page.getByRole('button', { name: 'Verify', exact: true }).waitFor()
    await expectAccessible(bob.page, 'the conversation details')
    await bob.page.getByRole('button', { name: 'Verify', exact: true }).click()
    await bob.page.getByRole('dialog', { name: `Verify ${alice.address}` }).waitFor()
    await expectAccessible(bob.page, 'the verify dialog')

    await alice.page.goto('/account')
    await alice.page.getByRole('heading', { name: 'Account' }).waitFor()
    await expectAccessible(alice.page, 'the account screen')
    await alice.page.getByRole('button', { name: 'Delete account' }).click()
    await alice.page.getByRole('button', { name: 'Delete forever' }).waitFor()
    await expectAccessible(alice.page, 'the delete account dialog')
    await alice.page.keyboard.press('Escape')

    // The login screen, in a fresh profile, and a wrong password.
    const { page: login } = await w.newPage('login')
    await login.goto('/login')
    await login.getByRole('button', { name: 'Sign in' }).waitFor()
    await expectAccessible(login, 'the login screen')
    await fillLogin(login, alice.username, 'not the password at all')
    await login.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor({ timeout: DELIVERY_TIMEOUT })
    await expectAccessible(login, 'the login screen with an error')
    await fillLogin(login, alice.username, PASSWORD)
    await waitForMain(login)
    await expectAccessible(login, 'the main screen after login')

    // Dark mode too (its contrast is checked separately).
    await login.getByRole('button', { name: 'Toggle dark mode' }).click()
    await expectAccessible(login, 'the main screen in dark mode')
  },
  slow,
)

e2e(
  'a browser user and a Go SDK user (the privateline CLI) exchange messages both ways',
  async (w) => {
    const cli = cliAccount(w.server.url, w.server.serverName)
    try {
      const web = await newUser(w, 'web')
      const cliAddress = cli.address
      const run = cli.run
      const nextEvent = cli.listen(DELIVERY_TIMEOUT)
      await nextEvent((e) => e.type === 'ready', 'ready')

      // Browser → terminal.
      await startChat(web.page, cliAddress)
      await send(web.page, 'Hello terminal, from the browser')
      const got = await nextEvent((e) => e.type === 'message' && e.message?.text === 'Hello terminal, from the browser', 'the message')
      assert.equal(got.message.from, web.address)
      assert.equal(got.message.error, undefined)

      // Terminal → browser, without a reload.
      run('send', 'send', web.address, 'Hello browser, from the terminal')
      await expectMessage(web.page, 'Hello browser, from the terminal')
      const history = JSON.parse(run('send', '--json', 'history', '--with', web.address))
      assert.ok(
        history.messages.some((m) => m.text === 'Hello terminal, from the browser' && m.from === web.address),
        `the CLI's history lacks the browser's message: ${JSON.stringify(history).slice(0, 500)}`,
      )
    } finally {
      cli.close()
    }
  },
  slow,
)
