/**
 * Registers the service worker (public/sw.js), which keeps the app shell
 * for opening the app without a network. Production builds only: in
 * development Vite serves modules that change on every edit, and under
 * Vitest there is no navigator.serviceWorker.
 */
export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return
  const register = () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err: unknown) => {
      // The app works without it; it only cannot open offline.
      console.warn('PrivateLine: the app will not open offline (service worker not registered):', err)
    })
  }
  if (document.readyState === 'complete') register()
  else window.addEventListener('load', register, { once: true })
}
