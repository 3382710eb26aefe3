// Screenshots of the real app for docs/screenshots/ (shown in the
// repository's README): a real homeserver serving the built client,
// Debian's Chromium, and three users (alice, bob, carol) who register
// through the UI, chat, share a picture, verify each other and make a
// group. Every scene is saved in light and in dark mode (the system
// preference, emulated; the app follows it when no choice is stored).
//
//     cd clients/web && npm run build
//     go build -o /tmp/pl-homeserver ../../cmd/homeserver
//     PRIVATELINE_HOMESERVER=/tmp/pl-homeserver node e2e/screenshots.mjs [OUTDIR]
//
// OUTDIR defaults to docs/screenshots at the repository root. This is not
// a test (it asserts nothing beyond what the walk needs); it reuses the
// harness and the user actions of the browser tests.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PASSWORD, launchChromium, startHomeserver } from './harness.mjs'
import {
  DELIVERY_TIMEOUT,
  chatHeading,
  conversationLink,
  expectMessage,
  expectStatus,
  messageLog,
  openConversation,
  register,
  send,
  startChat,
  waitForMain,
  waitUntil,
} from './users.mjs'

const outDir = process.argv[2] || fileURLToPath(new URL('../../../docs/screenshots', import.meta.url))
mkdirSync(outDir, { recursive: true })

const DESKTOP = { width: 1280, height: 800 }
const PHONE = { width: 390, height: 844 }
const SERVER_NAME = 'example.org'
const PICTURE = 'ridge-at-sunrise.png'

/** The page's background as CssBaseline paints it in each mode (theme.ts). */
const BODY_BG = { light: 'rgb(243, 245, 249)', dark: 'rgb(15, 18, 24)' }

/** Waits until nothing moves: fonts loaded, pictures decoded, transitions and animations done. */
async function settle(page) {
  await page.evaluate(async () => {
    await document.fonts.ready
    for (let i = 0; i < 20; i++) {
      const running = document
        .getAnimations()
        .filter((a) => a.playState === 'running' && a.effect?.getComputedTiming().iterations !== Infinity)
      const images = [...document.images].filter((img) => !img.complete)
      if (running.length === 0 && images.length === 0) return
      await Promise.all([
        ...running.map((a) => a.finished.catch(() => {})),
        ...images.map((img) => new Promise((r) => img.addEventListener('load', r, { once: true }))),
      ])
    }
  })
}

async function setScheme(page, scheme) {
  await page.emulateMedia({ colorScheme: scheme })
  await waitUntil(async () => (await page.evaluate(() => getComputedStyle(document.body).backgroundColor)) === BODY_BG[scheme], {
    what: `the ${scheme} theme`,
  })
}

const saved = []
/** Saves the page as NAME-light.png and NAME-dark.png; the mouse rests where it shows no hover or tooltip. */
async function shoot(page, name) {
  const { width } = page.viewportSize()
  await page.mouse.move(width / 2, 28)
  for (const scheme of ['light', 'dark']) {
    await setScheme(page, scheme)
    await settle(page)
    const path = join(outDir, `${name}-${scheme}.png`)
    await page.screenshot({ path })
    saved.push(path)
    process.stdout.write(`screenshots: ${path}\n`)
  }
  await setScheme(page, 'light')
}

/** A landscape drawn on a canvas in the page (no borrowed picture): a sunrise over mountains and a lake. */
async function drawPicture(page) {
  const dataURL = await page.evaluate(() => {
    const w = 640
    const h = 420
    const c = document.createElement('canvas')
    c.width = w
    c.height = h
    const g = c.getContext('2d')
    // Sky.
    const sky = g.createLinearGradient(0, 0, 0, h * 0.62)
    sky.addColorStop(0, '#1d2b64')
    sky.addColorStop(0.45, '#a4508b')
    sky.addColorStop(0.8, '#f7a072')
    sky.addColorStop(1, '#ffd6a0')
    g.fillStyle = sky
    g.fillRect(0, 0, w, h)
    // Sun with a glow.
    const glow = g.createRadialGradient(410, 230, 10, 410, 230, 160)
    glow.addColorStop(0, 'rgba(255,244,214,0.95)')
    glow.addColorStop(0.25, 'rgba(255,214,150,0.55)')
    glow.addColorStop(1, 'rgba(255,214,150,0)')
    g.fillStyle = glow
    g.fillRect(0, 0, w, h)
    g.fillStyle = '#fff4d6'
    g.beginPath()
    g.arc(410, 232, 30, 0, Math.PI * 2)
    g.fill()
    // A few clouds.
    g.fillStyle = 'rgba(255,255,255,0.28)'
    for (const [x, y, s] of [[120, 80, 1], [250, 60, 0.7], [520, 110, 0.9]]) {
      g.beginPath()
      g.ellipse(x, y, 60 * s, 12 * s, 0, 0, Math.PI * 2)
      g.ellipse(x + 30 * s, y - 8 * s, 40 * s, 12 * s, 0, 0, Math.PI * 2)
      g.fill()
    }
    // Mountain ranges, far to near (a deterministic ridge line per range).
    const ranges = [
      { base: 250, amp: 70, color: '#6d4a7a', seed: 3 },
      { base: 275, amp: 55, color: '#4a3560', seed: 7 },
      { base: 300, amp: 40, color: '#2c2342', seed: 11 },
    ]
    for (const r of ranges) {
      g.fillStyle = r.color
      g.beginPath()
      g.moveTo(0, h)
      for (let x = 0; x <= w; x += 4) {
        const y =
          r.base -
          r.amp * (0.55 * Math.sin((x + r.seed * 37) / 97) + 0.3 * Math.sin((x + r.seed * 11) / 41) + 0.15 * Math.sin((x * r.seed) / 23))
        g.lineTo(x, y)
      }
      g.lineTo(w, h)
      g.closePath()
      g.fill()
    }
    // The lake, mirroring the sky, with the sun's path on the water.
    const lakeTop = 318
    const lake = g.createLinearGradient(0, lakeTop, 0, h)
    lake.addColorStop(0, '#f2a27a')
    lake.addColorStop(0.35, '#8a4f7d')
    lake.addColorStop(1, '#1d2b64')
    g.fillStyle = lake
    g.fillRect(0, lakeTop, w, h - lakeTop)
    g.fillStyle = 'rgba(255,240,200,0.6)'
    for (let i = 0; i < 9; i++) {
      const y = lakeTop + 8 + i * 10
      const half = 34 - i * 3
      g.fillRect(410 - half, y, half * 2, 2)
    }
    // A pine-covered shore in front.
    g.fillStyle = '#141022'
    g.fillRect(0, h - 34, w, 34)
    for (let x = -6; x < w; x += 14) {
      const t = 30 + ((x * 7) % 23)
      g.beginPath()
      g.moveTo(x, h - 30)
      g.lineTo(x + 7, h - 30 - t)
      g.lineTo(x + 14, h - 30)
      g.closePath()
      g.fill()
    }
    return c.toDataURL('image/png')
  })
  return Buffer.from(dataURL.split(',')[1], 'base64')
}

/** A user in a profile of their own, registered through the register screen. */
async function newUser(browser, server, username, viewport = DESKTOP) {
  const context = await browser.newContext({ baseURL: server.url, viewport, reducedMotion: 'reduce', colorScheme: 'light' })
  context.setDefaultTimeout(20_000)
  const page = await context.newPage()
  page.on('pageerror', (err) => process.stderr.write(`${username}: page error: ${err.stack || err.message}\n`))
  await page.goto('/register')
  return { username, address: `${username}@${SERVER_NAME}`, context, page }
}

async function main() {
  const browser = await launchChromium()
  const server = await startHomeserver({ serverName: SERVER_NAME })
  try {
    // Alice registers; the form, filled in, is the first screenshot.
    const alice = await newUser(browser, server, 'alice')
    await alice.page.getByRole('textbox', { name: 'Username' }).fill(alice.username)
    await alice.page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await alice.page.getByLabel('Repeat password', { exact: true }).fill(PASSWORD)
    await shoot(alice.page, 'register')
    await alice.page.getByRole('button', { name: 'Create account' }).click()
    await waitForMain(alice.page)

    const bob = await newUser(browser, server, 'bob')
    await register(bob.page, bob.username)
    const carol = await newUser(browser, server, 'carol')
    await register(carol.page, carol.username)

    // A direct chat, both ways, with a picture.
    await startChat(bob.page, alice.address)
    await send(bob.page, 'Hi Alice! Are we still on for the hike on Saturday?')
    await openConversation(alice.page, bob.address)
    await expectMessage(alice.page, 'Hi Alice! Are we still on for the hike on Saturday?')
    await send(alice.page, 'Yes! Meet at the trailhead at 8. I’ll bring coffee.')
    await expectMessage(bob.page, 'Meet at the trailhead at 8')
    const picture = await drawPicture(bob.page)
    await bob.page.getByLabel('Attach file').setInputFiles({ name: PICTURE, mimeType: 'image/png', buffer: picture })
    await send(bob.page, 'This was the view from the ridge last time.')
    const img = messageLog(alice.page).locator(`img[alt="${PICTURE}"]`)
    await img.waitFor({ timeout: DELIVERY_TIMEOUT })
    await waitUntil(() => img.evaluate((el) => el.complete && el.naturalWidth > 0), { what: 'the picture to be decrypted and decoded' })
    await send(alice.page, 'Wow, that sky! Let’s be up there before sunrise then.')
    await expectMessage(bob.page, 'Let’s be up there before sunrise')
    await send(bob.page, 'Deal. I’ll check the weather on Friday.')
    await expectMessage(alice.page, 'I’ll check the weather on Friday.')
    // Bob has the chat open: Alice's messages are read.
    await expectStatus(alice.page, 'Let’s be up there before sunrise', 'Read')

    // Carol writes to Alice, who has not read it yet (an unread badge).
    await startChat(carol.page, alice.address)
    await send(carol.page, 'Could you send me the slides from this morning?')
    await alice.page.getByRole('navigation', { name: 'Conversations' }).getByLabel('1 unread').waitFor({ timeout: DELIVERY_TIMEOUT })

    // Alice compares safety numbers with Bob and marks him verified.
    await alice.page.getByRole('button', { name: 'Conversation details' }).click()
    await alice.page.getByRole('button', { name: 'Verify', exact: true }).click()
    const verify = alice.page.getByRole('dialog', { name: `Verify ${bob.address}` })
    await verify.getByTestId('safety-number').waitFor()
    await verify.getByRole('img', { name: 'Your safety code' }).waitFor()
    await shoot(alice.page, 'verify')
    await verify.getByRole('button', { name: 'Mark as verified' }).click()
    await verify.getByText('Verified', { exact: true }).waitFor({ timeout: DELIVERY_TIMEOUT })
    await verify.getByRole('button', { name: 'Close' }).click()
    await verify.waitFor({ state: 'detached' })
    await alice.page.getByRole('main').getByText('Verified', { exact: true }).waitFor()
    // Notifications ("… is verified.") go before the picture is taken.
    await alice.page.getByRole('alert').waitFor({ state: 'detached', timeout: DELIVERY_TIMEOUT }).catch(() => {})
    await shoot(alice.page, 'chat')

    // The group.
    await alice.page.getByRole('button', { name: 'New group' }).click()
    const dialog = alice.page.getByRole('dialog')
    await dialog.getByRole('textbox', { name: 'Group name' }).fill('Team')
    await dialog.getByRole('textbox', { name: 'Members' }).fill(`${bob.address}, ${carol.address}`)
    await dialog.getByRole('button', { name: 'Create group' }).click()
    await chatHeading(alice.page, 'Team').waitFor({ timeout: DELIVERY_TIMEOUT })
    await send(alice.page, 'Welcome to the team channel! Stand-up moves to 9:30 tomorrow.')
    await openConversation(bob.page, 'Team')
    await expectMessage(bob.page, 'Stand-up moves to 9:30')
    await send(bob.page, 'Thanks, I’ll update the calendar invite.')
    await openConversation(carol.page, 'Team')
    await expectMessage(carol.page, 'I’ll update the calendar invite.')
    await send(carol.page, 'Works for me. I’ll post the agenda tonight.')
    await expectMessage(alice.page, 'I’ll post the agenda tonight.')
    await alice.page.getByRole('button', { name: 'Conversation details' }).click()
    for (const a of [alice.address, bob.address, carol.address]) {
      await alice.page.getByRole('listitem').filter({ hasText: a }).first().waitFor()
    }
    await shoot(alice.page, 'group')
    await alice.page.keyboard.press('Escape')

    // The account screen.
    await alice.page.getByRole('link', { name: 'Account' }).click()
    await alice.page.getByRole('heading', { name: 'Account' }).waitFor()
    await shoot(alice.page, 'account')

    // Bob on a phone: the chat with Alice.
    await bob.page.setViewportSize(PHONE)
    await bob.page.getByRole('button', { name: 'Open conversations' }).click()
    await conversationLink(bob.page, alice.address).click()
    await chatHeading(bob.page, alice.address).waitFor()
    await bob.page.getByRole('presentation').waitFor({ state: 'detached' }).catch(() => {})
    await shoot(bob.page, 'phone-chat')

    // A returning user signs in.
    const login = await newUser(browser, server, 'alice-again')
    await login.page.goto('/login')
    await login.page.getByRole('textbox', { name: 'Username' }).fill(alice.username)
    await login.page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await shoot(login.page, 'login')
  } finally {
    await browser.close()
    await server.stop()
  }
  process.stdout.write(`screenshots: ${saved.length} files in ${outDir}\n`)
}

await main()
