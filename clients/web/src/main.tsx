import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './App'
import { createAuth, preloadEngine } from './engine'
import { registerServiceWorker } from './sw'

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App auth={createAuth()} preload={preloadEngine} />
  </StrictMode>,
)
registerServiceWorker()
