// What a user does in the web client, by the accessible names of
// e2e/UI-CONTRACT.md (the screens must provide exactly these). Shared
// by the messenger tests and measure.mjs.

import { PASSWORD } from './harness.mjs'

/** Registration makes RSA-4096 keys in the browser: allow for a slow machine. */
export const KEYGEN_TIMEOUT = 90_000
/** How long a message may take to show up on the other side. */
export const DELIVERY_TIMEOUT = 20_000

export function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The main screen is up: the banner's heading and the conversation list. */
export async function waitForMain(page, timeout = KEYGEN_TIMEOUT) {
  await page.getByRole('navigation', { name: 'Conversations' }).waitFor({ timeout })
  await page.getByRole('banner').getByRole('heading', { name: 'PrivateLine' }).waitFor({ timeout })
}

/** Fills the register form and waits for the main screen. */
export async function register(page, username, password = PASSWORD) {
  if (!new URL(page.url()).pathname.startsWith('/register')) await page.goto('/register')
  await page.getByRole('textbox', { name: 'Username' }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByLabel('Repeat password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Create account' }).click()
  await waitForMain(page)
}

/** Fills the login form and clicks Sign in (does not wait). */
export async function fillLogin(page, username, password = PASSWORD) {
  await page.getByRole('textbox', { name: 'Username' }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

/** The sidebar link of a conversation (its accessible name starts with the title). */
export function conversationLink(page, title) {
  return page
    .getByRole('navigation', { name: 'Conversations' })
    .getByRole('link', { name: new RegExp('^' + escapeRegExp(title)) })
}

/** The chat's title heading. */
export function chatHeading(page, title) {
  return page.getByRole('heading', { level: 2, name: title, exact: true })
}

/** New chat → Address → Start chat; waits for the chat screen. */
export async function startChat(page, address) {
  await page.getByRole('button', { name: 'New chat' }).click()
  const dialog = page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: 'Address' }).fill(address)
  await dialog.getByRole('button', { name: 'Start chat' }).click()
  await chatHeading(page, address).waitFor({ timeout: DELIVERY_TIMEOUT })
  await dialog.waitFor({ state: 'detached' })
}

/** Opens a conversation from the sidebar (it must appear there first). */
export async function openConversation(page, title) {
  const link = conversationLink(page, title)
  await link.waitFor({ timeout: DELIVERY_TIMEOUT })
  await link.click()
  await chatHeading(page, title).waitFor()
}

export function messageLog(page) {
  return page.getByRole('log', { name: 'Messages' })
}

/** The message (role article) showing text. */
export function message(page, text) {
  return messageLog(page).getByRole('article').filter({ hasText: text })
}

/** Types text in the composer and clicks Send. */
export async function send(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' })
  await box.fill(text)
  await page.getByRole('button', { name: 'Send' }).click()
  await message(page, text).waitFor()
}

/** Waits until the message with text is on screen. */
export async function expectMessage(page, text, timeout = DELIVERY_TIMEOUT) {
  await message(page, text).waitFor({ timeout })
}

/** Waits until the outgoing message with text has the status (aria-label) status (a string, or a RegExp for either of several). */
export async function expectStatus(page, text, status, timeout = DELIVERY_TIMEOUT) {
  await message(page, text).getByLabel(status, { exact: true }).waitFor({ timeout })
}

/** Polls cond (a condition, not a delay) until it returns a truthy value. */
export async function waitUntil(cond, { timeout = DELIVERY_TIMEOUT, what = 'the condition' } = {}) {
  const end = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await cond()
      if (v) return v
      last = v
    } catch (err) {
      last = err
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
