// Exploration only (not committed): two federated servers, screenshots.
import dgram from 'node:dgram'
import net from 'node:net'
import { launchChromium, startHomeserver, uniqueName, PASSWORD } from './harness.mjs'
import { register, startChat, send, openConversation, expectMessage, message, DELIVERY_TIMEOUT } from './users.mjs'
const out = '/tmp/webE/x'
async function freePort(kind) {
  if (kind === 'udp') { const s = dgram.createSocket('udp4'); await new Promise((r) => s.bind(0, '127.0.0.1', r)); const { port } = s.address(); await new Promise((r) => s.close(r)); return port }
  const s = net.createServer(); await new Promise((r) => s.listen(0, '127.0.0.1', r)); const { port } = s.address(); await new Promise((r) => s.close(r)); return port
}
const http = [await freePort('tcp'), await freePort('tcp')], udp = [await freePort('udp'), await freePort('udp')]
const names = http.map((p) => `localhost:${p}`)
const servers = []
for (const i of [0, 1]) servers.push(await startHomeserver({ serverName: names[i], env: { LISTEN_ADDR: `127.0.0.1:${http[i]}`, FEDERATION_LISTEN_ADDR: `127.0.0.1:${udp[i]}`, FEDERATION_PEERS: `${names[1 - i]}=127.0.0.1:${udp[1 - i]}`, FEDERATION_DELIVERY_TIMEOUT: '2m' } }))
const browser = await launchChromium()
const errors = []
async function user(i, base, viewport) {
  const ctx = await browser.newContext({ baseURL: servers[i].url, viewport: { width: 1280, height: 800 } })
  ctx.setDefaultTimeout(30_000)
  const page = await ctx.newPage()
  page.on('pageerror', (e) => errors.push(base + ': ' + e.message))
  page.on('console', (m) => m.type() === 'error' && errors.push(base + ' console: ' + m.text() + ' ' + JSON.stringify(m.location())))
  const username = uniqueName(base)
  await page.goto('/register')
  await register(page, username)
  await page.setViewportSize(viewport)
  return { page, username, address: `${username}@${names[i]}` }
}
const shot = async (u, name) => { await u.page.waitForTimeout(300); await u.page.screenshot({ path: `${out}/${name}.png` }) }
try {
  const alice = await user(0, 'alice', { width: 1280, height: 800 })
  const bob = await user(1, 'bob-with-a-rather-long-name', { width: 375, height: 740 })
  await shot(alice, '01-alice-registered')
  // Unknown remote user
  await alice.page.getByRole('button', { name: 'New chat' }).click()
  let dialog = alice.page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: 'Address' }).fill(`nobody@${names[1]}`)
  await dialog.getByRole('button', { name: 'Start chat' }).click()
  await dialog.getByRole('alert').waitFor().catch(() => {})
  await shot(alice, '02-unknown-remote-user')
  console.log('unknown user:', await dialog.getByRole('alert').textContent().catch(() => '(no alert)'))
  // Unreachable server
  await dialog.getByRole('textbox', { name: 'Address' }).fill('carol@localhost:1')
  await dialog.getByRole('button', { name: 'Start chat' }).click()
  const t0 = Date.now()
  await alice.page.waitForFunction(() => { const a = document.querySelector('[role=dialog] [role=alert]'); return a && !a.textContent.includes('nobody') && a.textContent.length > 0 && !document.querySelector('[role=dialog] button[disabled]') }, null, { timeout: 90_000 }).catch((e) => console.log('wait unreachable', e.message))
  console.log('unreachable after', Date.now() - t0, 'ms:', await dialog.getByRole('alert').textContent().catch(() => '(no alert)'))
  await shot(alice, '03-unreachable-server')
  await dialog.getByRole('textbox', { name: 'Address' }).fill('dave@no-such-host.invalid')
  await dialog.getByRole('button', { name: 'Start chat' }).click()
  const t1 = Date.now()
  await alice.page.waitForFunction(() => { const a = document.querySelector('[role=dialog] [role=alert]'); return a && a.textContent.includes('no-such') || (a && !document.querySelector('[role=dialog] button[disabled]') && a.textContent.length > 0 && !a.textContent.includes('localhost:1')) }, null, { timeout: 90_000 }).catch((e) => console.log('wait invalid', e.message))
  console.log('unknown server after', Date.now() - t1, 'ms:', await dialog.getByRole('alert').textContent().catch(() => '(no alert)'))
  await shot(alice, '04-unknown-server')
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  // Chat
  await startChat(alice.page, bob.address)
  await shot(alice, '05-alice-chat-open')
  await send(alice.page, 'Hello bob, from the other server')
  await shot(alice, '06-alice-sent')
  await bob.page.getByRole('button', { name: 'Open conversations' }).click()
  await bob.page.getByRole('navigation', { name: 'Conversations' }).getByRole('link').first().waitFor({ timeout: 40_000 })
  await shot(bob, '07-bob-sidebar-mobile')
  await bob.page.getByRole('navigation', { name: 'Conversations' }).getByRole('link').first().click()
  await expectMessage(bob.page, 'Hello bob, from the other server', 40_000)
  await shot(bob, '08-bob-chat-mobile')
  await send(bob.page, 'Hi alice! Got it.')
  await expectMessage(alice.page, 'Hi alice! Got it.', 40_000)
  // picture
  const dataURL = await alice.page.evaluate(() => { const c = document.createElement('canvas'); c.width = 320; c.height = 200; const g = c.getContext('2d'); g.fillStyle = '#1976d2'; g.fillRect(0, 0, 320, 200); g.fillStyle = '#fff'; g.font = 'bold 30px sans-serif'; g.fillText('Picture', 100, 110); return c.toDataURL('image/png') })
  await alice.page.getByLabel('Attach file').setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: Buffer.from(dataURL.split(',')[1], 'base64') })
  await shot(alice, '09-alice-attached')
  await alice.page.getByRole('textbox', { name: 'Message' }).fill('a picture across servers')
  await alice.page.getByRole('button', { name: 'Send' }).click()
  await message(alice.page, 'a picture across servers').waitFor()
  await shot(alice, '10-alice-picture-sent')
  await message(bob.page, 'a picture across servers').getByRole('img', { name: 'blue.png' }).waitFor({ timeout: 40_000 })
  await shot(bob, '11-bob-picture')
  await message(alice.page, 'a picture across servers').getByLabel(/Delivered|Read/).waitFor({ timeout: 40_000 })
  await shot(alice, '12-alice-picture-delivered')
  // verify
  await alice.page.getByRole('button', { name: 'Conversation details' }).click()
  await shot(alice, '13-alice-details')
  await alice.page.getByRole('button', { name: 'Verify' }).click()
  await alice.page.getByTestId('safety-number').waitFor({ timeout: 40_000 })
  await alice.page.waitForTimeout(1500)
  await shot(alice, '14-alice-verify')
  await bob.page.getByRole('button', { name: 'Conversation details' }).click()
  await bob.page.getByRole('button', { name: 'Verify' }).click()
  await bob.page.getByTestId('safety-number').waitFor({ timeout: 40_000 })
  await bob.page.waitForTimeout(1500)
  await shot(bob, '15-bob-verify-mobile')
  await bob.page.keyboard.press('Escape')
  // server 2 down: what does alice see?
  await servers[1].stop()
  await send(alice.page, 'Are you still there?')
  await alice.page.waitForTimeout(8000)
  await shot(alice, '16-alice-peer-server-down')
  console.log('status while down:', await message(alice.page, 'Are you still there?').getByRole('img').evaluateAll((e) => e.map((x) => x.getAttribute('aria-label'))))
  await alice.page.getByRole('button', { name: 'New chat' }).click()
  dialog = alice.page.getByRole('dialog')
  await dialog.getByRole('textbox', { name: 'Address' }).fill(`someone@${names[1]}`)
  await dialog.getByRole('button', { name: 'Start chat' }).click()
  const t2 = Date.now()
  await dialog.getByRole('alert').waitFor({ timeout: 90_000 }).catch((e) => console.log('wait down', e.message))
  console.log('server down lookup after', Date.now() - t2, 'ms:', await dialog.getByRole('alert').textContent().catch(() => '(no alert)'))
  await shot(alice, '17-lookup-server-down')
} catch (e) {
  console.log('FAILED', e)
} finally {
  console.log('errors', errors)
  await browser.close()
  for (const s of servers) await s.stop().catch(() => {})
}
