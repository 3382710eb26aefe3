// Test-only: the App over the fake engine at a route.
import { render, screen, waitFor } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { App } from '../../App'
import { FakeAuth, FakeEngine } from './fakeEngine'
import { seedState } from './seed'

export const password = 'correct horse battery'

export function newAuth(): FakeAuth {
  return new FakeAuth({
    accounts: [{ username: 'alice', password }],
    directory: ['bob@example.org', 'carol@example.org', 'erin@example.org', 'dave@other.example'],
  })
}

/** Alice signed in (a stored session) with the seeded conversations, at `route`. */
export async function renderSignedIn(route = '/') {
  const auth = newAuth()
  const me = 'alice@example.org'
  const engine = new FakeEngine(auth.accounts.get('alice')!, me, seedState(me))
  for (const a of ['bob@example.org', 'carol@example.org', 'erin@example.org', 'dave@other.example']) engine.directory.add(a)
  auth.stored = engine
  const user = userEvent.setup()
  window.history.pushState(null, '', route)
  const view = render(<App auth={auth} />)
  await screen.findByRole('navigation', { name: 'Conversations' })
  // The routed screen (chat, account) is a lazily loaded chunk: its spinner first.
  await waitFor(() => {
    if (screen.queryByRole('progressbar', { name: 'Loading' })) throw new Error('the screen is still loading')
  })
  return { auth, engine, user, view }
}

export function renderAt(auth: FakeAuth, route: string) {
  const user = userEvent.setup()
  window.history.pushState(null, '', route)
  const view = render(<App auth={auth} />)
  return { user, view }
}

export const chatPath = (id: string) => '/chat/' + encodeURIComponent(id)
