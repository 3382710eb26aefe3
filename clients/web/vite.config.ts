/// <reference types="vitest/config" />
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// spec/vectors lives at the repository root, two levels up.
const vectors = fileURLToPath(new URL('../../spec/vectors', import.meta.url))

export default defineConfig({
  plugins: [react()],
  resolve: { alias: { '@vectors': vectors } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
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
