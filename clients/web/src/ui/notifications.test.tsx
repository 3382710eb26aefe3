// @vitest-environment jsdom
// The notifications switch (account screen) and what a click on a "New
// message" notification does in the app (src/ui/openUnread.ts): the URL
// /?open=unread and the service worker's message {type: "open-unread"}.
import './testing/setup'
import { afterEach, describe, expect, it } from 'vitest'
import { act, render, screen, waitFor, within } from '@testing-library/react'
import { App } from '../App'
import { FakeEngine } from './testing/fakeEngine'
import { chatPath, newAuth, renderSignedIn } from './testing/render'
import { seedState } from './testing/seed'

const NAME = 'Notifications when PrivateLine is closed'
const theSwitch = () => screen.getByRole('switch', { name: NAME })

describe('the notifications switch', () => {
  it('turns notifications on and off through the engine', async () => {
    const { user, engine } = await renderSignedIn('/account')
    expect(theSwitch()).not.toBeChecked()
    expect(theSwitch()).toBeEnabled()
    expect(theSwitch()).toHaveAccessibleDescription(/says only “New message” and how many are unread: never who wrote or what/)
    await user.click(theSwitch())
    await waitFor(() => expect(theSwitch()).toBeChecked())
    expect(engine.getState().push).toBe('on')
    await user.click(theSwitch())
    await waitFor(() => expect(theSwitch()).not.toBeChecked())
    expect(engine.calls.map((c) => c.method).filter((m) => m.endsWith('Push'))).toEqual(['enablePush', 'disablePush'])
  })

  it('cannot be used while a change is under way', async () => {
    const { user, engine } = await renderSignedIn('/account')
    engine.actionGate.close()
    await user.click(theSwitch())
    expect(await screen.findByRole('progressbar', { name: 'Turning notifications on' })).toBeInTheDocument()
    expect(theSwitch()).toBeDisabled()
    act(() => engine.actionGate.release())
    await waitFor(() => expect(theSwitch()).toBeChecked())
    expect(theSwitch()).toBeEnabled()
    expect(screen.queryByRole('progressbar', { name: 'Turning notifications on' })).not.toBeInTheDocument()
  })

  it.each([
    ['unavailable', 'This server does not send notifications while PrivateLine is closed.'],
    ['unsupported', 'This browser cannot show notifications while PrivateLine is closed.'],
    ['denied', 'Notifications are blocked for PrivateLine in this browser. Allow them in the site settings'],
  ] as const)('is disabled with the reason when notifications are %s', async (state, reason) => {
    const { engine } = await renderSignedIn('/account')
    act(() => engine.setPush(state))
    expect(theSwitch()).toBeDisabled()
    expect(theSwitch()).not.toBeChecked()
    expect(theSwitch()).toHaveAccessibleDescription(expect.stringContaining(reason))
  })

  it('shows why it could not be turned on, and stays off', async () => {
    const { user, engine } = await renderSignedIn('/account')
    engine.failNext('Notifications could not be turned on: this server does not send Web Push to that push service.')
    await user.click(theSwitch())
    expect(await screen.findByRole('alert')).toHaveTextContent('Notifications could not be turned on: this server does not send Web Push to that push service.')
    expect(theSwitch()).not.toBeChecked()
    expect(theSwitch()).toBeEnabled()
    // The next try clears it.
    await user.click(theSwitch())
    await waitFor(() => expect(theSwitch()).toBeChecked())
    expect(screen.queryByRole('alert')).not.toBeInTheDocument()
  })

  it('shows "denied" when the user blocks the permission prompt', async () => {
    const { user, engine } = await renderSignedIn('/account')
    engine.pushPermission = 'denied'
    await user.click(theSwitch())
    expect(await screen.findByRole('alert')).toHaveTextContent('Notifications are blocked for PrivateLine in this browser.')
    expect(theSwitch()).toBeDisabled()
  })

  it('shows a failure of the renewal made at start', async () => {
    const { engine } = await renderSignedIn('/account')
    act(() => engine.setPush('off', 'Notifications were turned off: this server does not send Web Push to that push service.'))
    expect(screen.getByRole('alert')).toHaveTextContent('Notifications were turned off: this server does not send Web Push to that push service.')
  })
})

/** A service worker container that the test can post messages from. */
function fakeServiceWorker(): EventTarget {
  const sw = new EventTarget()
  Object.defineProperty(navigator, 'serviceWorker', { value: sw, configurable: true })
  return sw
}

afterEach(() => {
  delete (navigator as { serviceWorker?: unknown }).serviceWorker
})

describe('a click on a notification', () => {
  it('opens /?open=unread at the conversation with the newest unread message, once synced', async () => {
    const auth = newAuth()
    const engine = new FakeEngine(auth.accounts.get('alice')!, 'alice@example.org', seedState('alice@example.org'))
    auth.stored = engine
    engine.syncGate.close() // still catching up with the server
    window.history.pushState(null, '', '/?open=unread')
    render(<App auth={auth} />)
    await waitFor(() => expect(engine.calls.some((c) => c.method === 'newestUnread')).toBe(true))
    expect(window.location.search).toBe('') // not followed again on reload
    expect(window.location.pathname).toBe('/')
    act(() => engine.syncGate.release())
    expect(await screen.findByRole('heading', { level: 2, name: 'Weekend trip' })).toBeInTheDocument()
    expect(window.location.pathname).toBe(chatPath('g:trip'))
    expect(engine.calls.filter((c) => c.method === 'newestUnread')).toHaveLength(1)
  })

  it("follows the service worker's message in a window that was open", async () => {
    const sw = fakeServiceWorker()
    const { engine } = await renderSignedIn('/account')
    act(() => void engine.receive('d:carol@example.org', 'carol@example.org', 'hello again'))
    act(() => void sw.dispatchEvent(new MessageEvent('message', { data: { type: 'open-unread' } })))
    expect(await screen.findByRole('heading', { level: 2, name: 'carol@example.org' })).toBeInTheDocument()
    expect(window.location.pathname).toBe(chatPath('d:carol@example.org'))
    // Other messages are not commands.
    const before = engine.calls.length
    act(() => void sw.dispatchEvent(new MessageEvent('message', { data: { type: 'something-else' } })))
    expect(engine.calls.slice(before).some((c) => c.method === 'newestUnread')).toBe(false)
  })

  it('shows the conversation list when nothing is unread', async () => {
    const sw = fakeServiceWorker()
    const { engine } = await renderSignedIn(chatPath('d:bob@example.org'))
    for (const c of engine.getState().conversations) await act(() => engine.markRead(c.id))
    act(() => void sw.dispatchEvent(new MessageEvent('message', { data: { type: 'open-unread' } })))
    // (Leaving a chat of many messages is slow on a loaded machine: a longer wait for this condition.)
    await waitFor(() => expect(window.location.pathname).toBe('/'), { timeout: 15_000 })
    expect(await screen.findByRole('heading', { name: 'No conversation selected' })).toBeInTheDocument()
    expect(screen.getByRole('navigation', { name: 'Conversations' })).toBeVisible()
  })

  it('opens the conversation list on a phone when nothing is unread', async () => {
    const real = window.matchMedia
    window.matchMedia = (query: string) => ({ ...real(query), matches: query.includes('max-width') })
    try {
      const auth = newAuth()
      const state = seedState('alice@example.org')
      const engine = new FakeEngine(auth.accounts.get('alice')!, 'alice@example.org', {
        ...state,
        conversations: state.conversations!.map((c) => ({ ...c, unread: 0 })),
      })
      auth.stored = engine
      window.history.pushState(null, '', '/?open=unread')
      render(<App auth={auth} />)
      const nav = await screen.findByRole('navigation', { name: 'Conversations' })
      expect(within(nav).getByRole('link', { name: /^Weekend trip/ })).toBeInTheDocument()
      expect(screen.getByRole('button', { name: 'Close conversations' })).toBeInTheDocument()
    } finally {
      window.matchMedia = real
    }
  })

  it('leaves the user where they went while the app was catching up', async () => {
    const sw = fakeServiceWorker()
    const { engine, user } = await renderSignedIn('/')
    engine.syncGate.close()
    act(() => void sw.dispatchEvent(new MessageEvent('message', { data: { type: 'open-unread' } })))
    await user.click(screen.getByRole('link', { name: 'Account' }))
    expect(await screen.findByRole('heading', { name: 'Account' })).toBeInTheDocument()
    act(() => engine.syncGate.release())
    await waitFor(() => expect(engine.calls.filter((c) => c.method === 'newestUnread')).toHaveLength(1))
    // newestUnread answered (the trip) but the user is on the account screen now.
    await act(async () => {
      await engine.newestUnread()
    })
    expect(window.location.pathname).toBe('/account')
  })
})
