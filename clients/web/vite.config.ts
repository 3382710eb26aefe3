/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import react from '@vitejs/plugin-react'

// spec/vectors lives at the repository root, two levels up.
const vectors = fileURLToPath(new URL('../../spec/vectors', import.meta.url))

/**
 * Writes dist/precache.json, {"files": [...]}: every file of the build
 * under /assets/ (all JavaScript chunks, the lazily loaded ones too, and
 * any CSS or other asset; not the source maps). The service worker
 * (public/sw.js) caches them all at install, so that a screen the user has
 * not opened yet also opens offline.
 */
function precacheList(): Plugin {
  return {
    name: 'privateline-precache-list',
    apply: 'build',
    generateBundle(_options, bundle) {
      const files = Object.keys(bundle)
        .filter((f) => f.startsWith('assets/') && !f.endsWith('.map'))
        .map((f) => '/' + f)
        .sort()
      this.emitFile({ type: 'asset', fileName: 'precache.json', source: JSON.stringify({ files }, null, 1) + '\n' })
    },
  }
}

export default defineConfig({
  plugins: [react(), precacheList()],
  resolve: { alias: { '@vectors': vectors } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    rollupOptions: {
      output: {
        // React itself in a chunk of its own (index.html preloads it next to
        // the entry): it changes less often than the app, so a new build
        // usually leaves it cached. Nothing else: a vendor chunk of MUI
        // would pull the signed-in screens' components into the sign-in page.
        manualChunks(id) {
          if (/[\\/]node_modules[\\/](react|react-dom|scheduler)[\\/]/.test(id)) return 'react'
        },
      },
    },
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'src/**/*.test.tsx'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The engine's integration test opens WebSockets: Node 20 has the
    // browser WebSocket only behind this flag (Node 22 by default).
    pool: 'forks',
    poolOptions: { forks: { execArgv: ['--experimental-websocket'] } },
  },
})
