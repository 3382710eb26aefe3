// Renders the app icons (public/icons/*.png) from their SVG sources
// (public/icons/icon.svg, icon-maskable.svg) in headless Chromium, so that
// no image tool is needed. The PNGs are committed; run this after editing
// an SVG:
//
//   cd clients/web && node scripts/render-icons.mjs
//
// CHROMIUM overrides the browser (default /usr/bin/chromium).
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const icons = new URL('../public/icons/', import.meta.url)
const outputs = [
  { svg: 'icon.svg', png: 'icon-192.png', size: 192 },
  { svg: 'icon.svg', png: 'icon-512.png', size: 512 },
  { svg: 'icon-maskable.svg', png: 'icon-maskable-512.png', size: 512 },
]

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
try {
  for (const o of outputs) {
    const svg = await readFile(new URL(o.svg, icons), 'utf8')
    const page = await browser.newPage({ viewport: { width: o.size, height: o.size }, deviceScaleFactor: 1 })
    const src = 'data:image/svg+xml;base64,' + Buffer.from(svg).toString('base64')
    await page.setContent(
      `<style>html,body{margin:0;background:transparent}</style><img src="${src}" width="${o.size}" height="${o.size}">`,
    )
    await page.locator('img').evaluate((img) => img.decode())
    const out = fileURLToPath(new URL(o.png, icons))
    await page.locator('img').screenshot({ path: out, omitBackground: true })
    await page.close()
    console.log(`${out} (${o.size}×${o.size})`)
  }
} finally {
  await browser.close()
}
