// Dev-only: renders the preview in Debian's chromium, saves screenshots and
// runs axe-core on each. Usage: node src/ui/testing/screenshots.mjs [outdir]
import { createServer } from 'vite'
import { chromium } from 'playwright-core'
import { readFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'

const out = process.argv[2] ?? '/tmp/ui-shots'
mkdirSync(out, { recursive: true })
const require = createRequire(import.meta.url)
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

const server = await createServer({ server: { port: 0, host: '127.0.0.1' }, logLevel: 'error' })
await server.listen()
const base = server.resolvedUrls.local[0].replace(/\/$/, '')
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})

const shots = [
  ['login', '', '/login'],
  ['register', '', '/register'],
  ['empty', 'alice', '/'],
  ['chat-bob', 'alice', '/chat/' + encodeURIComponent('d:bob@example.org')],
  ['chat-group', 'alice', '/chat/' + encodeURIComponent('g:trip')],
  ['chat-carol', 'alice', '/chat/' + encodeURIComponent('d:carol@example.org')],
  ['account', 'alice', '/account'],
  ['offline', 'alice', '/chat/' + encodeURIComponent('d:dave@other.example'), '&connection=offline'],
  ['ended', 'alice', '/chat/' + encodeURIComponent('d:bob@example.org'), '&ended=1'],
]
const only = process.env.ONLY?.split(',')
let failures = 0
for (const scheme of ['light', 'dark']) {
  for (const [w, h, tag] of [[1280, 800, 'desk'], [390, 844, 'phone']]) {
    const ctx = await browser.newContext({ viewport: { width: w, height: h }, colorScheme: scheme, reducedMotion: 'reduce' })
    const page = await ctx.newPage()
    page.on('pageerror', (e) => console.log('pageerror', e.message))
    page.on('console', (m) => m.type() === 'error' && console.log('console', m.text()))
    for (const [name, as, route, extra = ''] of shots) {
      if (only && !only.includes(name)) continue
      await page.goto(`${base}/src/ui/testing/preview.html?${as ? 'as=' + as + '&' : ''}route=${encodeURIComponent(route)}${extra}`)
      await page.waitForLoadState('networkidle')
      await page.waitForTimeout(400) // screenshots only: let fonts and transitions settle
      if (process.env.ACTION === 'details' && name.startsWith('chat')) {
        await page.getByRole('button', { name: 'Conversation details' }).click()
        await page.waitForTimeout(400)
      }
      if (process.env.ACTION === 'verify' && name === 'chat-bob') {
        await page.getByRole('button', { name: 'Conversation details' }).click()
        await page.getByRole('button', { name: 'Verify' }).click()
        await page.getByTestId('safety-number').waitFor()
        await page.waitForTimeout(400)
      }
      if (process.env.ACTION === 'drawer' && tag === 'phone') {
        await page.getByRole('button', { name: 'Open conversations' }).click()
        await page.waitForTimeout(400)
      }
      const file = `${out}/${name}-${scheme}-${tag}${process.env.ACTION ? '-' + process.env.ACTION : ''}.png`
      await page.screenshot({ path: file })
      await page.addScriptTag({ content: axeSource })
      const res = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }))
      for (const v of res.violations) {
        if (v.impact === 'serious' || v.impact === 'critical') failures++
        console.log(`${name}-${scheme}-${tag}: [${v.impact}] ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`)
      }
    }
    await ctx.close()
  }
}
await browser.close()
await server.close()
console.log(failures ? `${failures} serious/critical axe violations` : 'axe: no serious/critical violations')
process.exit(0)
