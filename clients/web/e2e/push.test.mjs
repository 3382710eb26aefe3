// Notifications while the app is closed (Web Push), in Chromium against
// real homeservers: one without Web Push (the suite's) and one with a VAPID
// key made by `homeserver gen-vapid`.
//
// What headless Chromium cannot do, and is therefore not pretended here: it
// has no push service (a browser context is like a private window, and
// there is no network), so pushManager.subscribe() fails and no server can
// reach it. The subscribe and register path is tested with fakes in
// src/engine/push.test.ts and against a real homeserver in
// test/push.integration.test.ts. Here: the switch as each server makes it;
// the failure to subscribe shown as a sentence; a push delivered to the
// app's service worker over the DevTools protocol
// (ServiceWorker.deliverPushMessage) showing "New message"; and the two
// ways a notification click reaches the app (the URL /?open=unread and the
// service worker's message to an open window) landing in the conversation
// holding the newest unread message. A real click on a system
// notification is not possible in headless Chromium: the worker's message
// is posted from the worker itself (Playwright's evaluate in its global).

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { expectAccessible, startHomeserver, suite, uniqueName, PASSWORD } from './harness.mjs'
import { chatHeading, expectMessage, register, send, startChat, waitUntil, DELIVERY_TIMEOUT } from './users.mjs'

const e2e = suite() // its server sends no Web Push

let vapidServer = null
let keyDir = null
before(async () => {
  const bin = process.env.PRIVATELINE_HOMESERVER
  if (!bin) throw new Error('PRIVATELINE_HOMESERVER is not set: run the browser tests with scripts/e2etest.sh')
  const out = execFileSync(bin, ['gen-vapid'], { encoding: 'utf8' })
  const pem = out.match(/-----BEGIN PRIVATE KEY-----[^]*?-----END PRIVATE KEY-----\n/)
  assert.ok(pem, `homeserver gen-vapid printed no PEM key:\n${out}`)
  keyDir = mkdtempSync(join(tmpdir(), 'privateline-e2e-vapid-'))
  writeFileSync(join(keyDir, 'vapid.pem'), pem[0], { mode: 0o600 })
  vapidServer = await startHomeserver({
    env: { VAPID_PRIVATE_KEY: join(keyDir, 'vapid.pem'), VAPID_SUBJECT: 'mailto:ops@e2e.test' },
  })
})
after(async () => {
  await vapidServer?.stop()
  if (keyDir) rmSync(keyDir, { recursive: true, force: true })
})

const SWITCH = 'Notifications when PrivateLine is closed'

/** A user on the server with Web Push, notifications allowed for the site (as if the user had said yes before). */
async function pushUser(w, base) {
  const username = uniqueName(base)
  const { context, page } = await w.newPage(username, { baseURL: vapidServer.url })
  await context.grantPermissions(['notifications'], { origin: vapidServer.url })
  return { username, address: `${username}@${vapidServer.serverName}`, password: PASSWORD, context, page }
}

/** Waits for the app's service worker to be active and in control of the page. */
async function serviceWorkerReady(page) {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }))
    }
  })
}

/** The notifications the app's service worker shows now. */
function shownNotifications(page) {
  return page.evaluate(async () =>
    (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({
      title: n.title, body: n.body, tag: n.tag, icon: new URL(n.icon).pathname, renotify: n.renotify, data: n.data,
    })),
  )
}

e2e('without Web Push on the server, the switch is off and says why', async (w) => {
  const alice = await w.user('alice', '/register')
  await register(alice.page, alice.username)
  await alice.page.getByRole('link', { name: 'Account' }).click()
  const sw = alice.page.getByRole('switch', { name: SWITCH })
  await waitUntil(() => sw.isDisabled(), { what: 'the switch to be disabled (the server said Web Push is not available)' })
  assert.equal(await sw.isChecked(), false)
  const help = await alice.page.locator('#' + (await sw.getAttribute('aria-describedby'))).textContent()
  assert.equal(help, 'This server does not send notifications while PrivateLine is closed.')
  // A server without Web Push is a normal server: nothing in the console (it used to log a 404).
  assert.deepEqual(w.consoleErrors, [], 'console errors on a server without Web Push')
  await expectAccessible(alice.page, 'the account screen with notifications unavailable')
})

e2e('with Web Push on the server, the switch can be used; headless Chromium has no push service, which the screen says', async (w) => {
  const alice = await pushUser(w, 'alice')
  const key = alice.page.waitForResponse((r) => new URL(r.url()).pathname === '/api/push/vapid-public-key', { timeout: 120_000 })
  await alice.page.goto('/register')
  await register(alice.page, alice.username)
  const answer = await key
  assert.equal(answer.status(), 200, 'the VAPID key is served')
  assert.match((await answer.json()).public_key, /^[A-Za-z0-9_-]{87}$/)
  await alice.page.getByRole('link', { name: 'Account' }).click()
  const sw = alice.page.getByRole('switch', { name: SWITCH })
  await sw.waitFor()
  assert.equal(await sw.isEnabled(), true, 'the switch is usable')
  assert.equal(await sw.isChecked(), false)
  await serviceWorkerReady(alice.page)
  await sw.click()
  const alert = alice.page.getByRole('alert')
  await alert.waitFor()
  assert.equal(
    await alert.textContent(),
    'Notifications could not be turned on: this browser’s push service did not answer. Private windows and some browsers have none; otherwise try again later.',
  )
  assert.equal(await sw.isChecked(), false, 'still off')
  assert.equal(await sw.isEnabled(), true, 'it can be tried again')
  await expectAccessible(alice.page, 'the account screen with the notifications switch')
})

e2e('a push shows one "New message" notification with nothing readable, whatever its payload', async (w) => {
  const alice = await pushUser(w, 'alice')
  await alice.page.goto('/register')
  await register(alice.page, alice.username)
  await serviceWorkerReady(alice.page)

  const cdp = await alice.context.newCDPSession(alice.page)
  const registrations = new Map()
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => {
    for (const r of e.registrations) registrations.set(r.registrationId, r)
  })
  await cdp.send('ServiceWorker.enable')
  const reg = await waitUntil(
    () => [...registrations.values()].find((r) => !r.isDeleted && r.scopeURL === vapidServer.url + '/'),
    { what: "the app's service worker registration" },
  )
  const deliver = (data) => cdp.send('ServiceWorker.deliverPushMessage', { origin: vapidServer.url, registrationId: reg.registrationId, data })
  // Delivers data and waits for exactly one notification saying body. A
  // push that reaches the worker while it is still starting up can be
  // lost, so the same push is delivered again every 2 s until it shows:
  // every notification has the tag new-message, so a repeat replaces it
  // and the count of notifications shown stays what is checked.
  const pushExpectOne = async (data, body) => {
    await deliver(data)
    let last = Date.now()
    const shown = await waitUntil(async () => {
      const n = await shownNotifications(alice.page)
      if (n.length === 1 && n[0].body === body) return n
      if (Date.now() - last > 2000) {
        await deliver(data)
        last = Date.now()
      }
      return false
    }, { what: `one notification saying "${body}"` })
    assert.deepEqual(shown[0], { title: 'PrivateLine', body, tag: 'new-message', icon: '/icons/icon-192.png', renotify: true, data: { open: 'unread' } })
  }

  // What the homeserver sends (docs/operations.md): the unread count only.
  await pushExpectOne(JSON.stringify({ type: 'new_message', unread: 3 }), '3 unread messages')
  // A burst is one notification (tag new-message), replaced by the latest.
  await pushExpectOne(JSON.stringify({ type: 'new_message', unread: 1 }), 'New message')
  await pushExpectOne(JSON.stringify({ type: 'new_message', unread: 7 }), '7 unread messages')
  // A payload that is not the server's still says that something arrived.
  await pushExpectOne('not json at all', 'New message')
})

e2e('a notification click opens the conversation holding the newest unread message', async (w) => {
  const alice = await pushUser(w, 'alice')
  await alice.page.goto('/register')
  await register(alice.page, alice.username)
  const bob = await pushUser(w, 'bob')
  await bob.page.goto('/register')
  await register(bob.page, bob.username)

  // Alice closes the app; bob writes to her directly, then in a group.
  await alice.page.close()
  await startChat(bob.page, alice.address)
  await send(bob.page, 'first, directly')
  await bob.page.getByRole('button', { name: 'New group' }).click()
  const dialog = bob.page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: 'Group name' }).fill('Push group')
  await dialog.getByRole('textbox', { name: 'Members' }).fill(alice.address)
  await dialog.getByRole('button', { name: 'Create group' }).click()
  await chatHeading(bob.page, 'Push group').waitFor({ timeout: DELIVERY_TIMEOUT })
  await send(bob.page, 'then, in the group')

  // The service worker opens a window at /?open=unread (its notificationclick).
  const page = await alice.context.newPage()
  w.watch(alice.username + '-again', page)
  await page.goto('/?open=unread')
  await chatHeading(page, 'Push group').waitFor({ timeout: DELIVERY_TIMEOUT })
  await expectMessage(page, 'then, in the group')
  const url = new URL(page.url())
  assert.match(decodeURIComponent(url.pathname), /^\/chat\/g:/)
  assert.equal(url.search, '', 'the query is gone (a reload does not jump again)')

  // An open window: the service worker tells it (after focusing it) to open the newest unread.
  await page.getByRole('link', { name: 'Account' }).click()
  await page.getByRole('heading', { name: 'Account' }).waitFor()
  await serviceWorkerReady(page)
  const worker = await waitUntil(() => alice.context.serviceWorkers().find((s) => new URL(s.url()).pathname === '/sw.js'), {
    what: "the app's service worker in Playwright",
  })
  await worker.evaluate(async () => {
    const windows = await self.clients.matchAll({ type: 'window' })
    for (const c of windows) c.postMessage({ type: 'open-unread' })
  })
  await chatHeading(page, bob.address).waitFor({ timeout: DELIVERY_TIMEOUT })
  await expectMessage(page, 'first, directly')
})
