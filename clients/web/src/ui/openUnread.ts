// A click on a "New message" notification (public/sw.js) lands here: the
// service worker either opens a window at /?open=unread or tells an open
// one with a message {type: OPEN_UNREAD}. Either way the app waits until the
// engine is in step with the server and opens the conversation holding the
// newest unread message, or the conversation list when nothing is unread.
// The notification and the message carry no content: the app finds the
// conversation in what it decrypted itself.
import { useCallback, useEffect, useRef } from 'react'
import { useLocation, useNavigate } from 'react-router-dom'
import { useEngine } from './context'
import { conversationPath } from './format'

/** The service worker's message (the same string is in public/sw.js). */
export const OPEN_UNREAD = 'open-unread'

/** The location state that asks the main layout to show the conversation list (the drawer on phones). */
export interface ShowConversations {
  showConversations: true
}

export function wantsConversations(state: unknown): boolean {
  return (state as Partial<ShowConversations> | null)?.showConversations === true
}

/** Follows notification clicks; used once, by the main layout. */
export function useOpenUnread(): void {
  const engine = useEngine()
  const navigate = useNavigate()
  const location = useLocation()
  const handled = useRef<string | null>(null)

  const open = useCallback(async () => {
    const from = window.location.pathname
    const id = await engine.newestUnread()
    // The user went somewhere else meanwhile: leave them there.
    if (window.location.pathname !== from) return
    if (id) navigate(conversationPath(id))
    else navigate('/', { state: { showConversations: true } satisfies ShowConversations })
  }, [engine, navigate])

  // The URL a notification opens a new window at.
  useEffect(() => {
    if (new URLSearchParams(location.search).get('open') !== 'unread' || handled.current === location.key) return
    handled.current = location.key
    navigate({ pathname: location.pathname, hash: location.hash }, { replace: true })
    void open()
  }, [location, navigate, open])

  // A window that was open already.
  useEffect(() => {
    const sw = (navigator as { serviceWorker?: ServiceWorkerContainer }).serviceWorker
    if (!sw) return
    const onMessage = (ev: MessageEvent) => {
      if ((ev.data as { type?: unknown } | null)?.type === OPEN_UNREAD) void open()
    }
    sw.addEventListener('message', onMessage)
    return () => sw.removeEventListener('message', onMessage)
  }, [open])
}
