// @vitest-environment jsdom
import './testing/setup'
import { describe, expect, it } from 'vitest'
import { act, screen, waitFor, within } from '@testing-library/react'
import { chatPath, password, renderSignedIn } from './testing/render'

describe('account', () => {
  it('shows the address and sets the default disappearing time', async () => {
    const { user, engine } = await renderSignedIn('/account')
    expect(screen.getByRole('heading', { name: 'Account' })).toBeInTheDocument()
    expect(screen.getByText('alice@example.org')).toBeInTheDocument()
    await user.click(screen.getByRole('combobox', { name: /Default disappearing time/ }))
    await user.click(screen.getByRole('option', { name: '1 week' }))
    await waitFor(() => expect(engine.getState().defaultRetentionSeconds).toBe(604800))
    expect(screen.getByRole('combobox', { name: /Default disappearing time/ })).toHaveTextContent('1 week')
  })

  it('changes the password, saying so when the current one is wrong', async () => {
    const { user } = await renderSignedIn('/account')
    const fill = async (current: string, next: string, repeat: string) => {
      for (const [label, v] of [['Current password', current], ['New password', next], ['Repeat new password', repeat]]) {
        await user.clear(screen.getByLabelText(label))
        await user.type(screen.getByLabelText(label), v)
      }
      await user.click(screen.getByRole('button', { name: 'Change password' }))
    }
    await fill('not it', 'a brand new secret', 'a brand new secret')
    expect(await screen.findByText('The current password is wrong.')).toBeInTheDocument()
    await fill(password, 'a brand new secret', 'a brand new secreT')
    expect(await screen.findByText('The new passwords do not match.')).toBeInTheDocument()
    await fill(password, 'a brand new secret', 'a brand new secret')
    expect(await screen.findByText('Your password is changed.')).toBeInTheDocument()
    expect(screen.getByLabelText('Current password')).toHaveValue('')
  })

  it('logs out to the sign-in screen', async () => {
    const { user, engine } = await renderSignedIn('/account')
    await user.click(screen.getByRole('button', { name: 'Log out' }))
    expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument()
    expect(screen.getByText('You are logged out.')).toBeInTheDocument()
    expect(engine.loggedOut).toBe(true)
  })

  it('shows a failed "Log out everywhere" and stays', async () => {
    const { user, engine } = await renderSignedIn('/account')
    engine.failNext('Cannot reach the server. Check your connection and try again.')
    await user.click(screen.getByRole('button', { name: 'Log out everywhere' }))
    expect(await screen.findByText('Cannot reach the server. Check your connection and try again.')).toBeInTheDocument()
    expect(screen.getByRole('button', { name: 'Log out everywhere' })).toBeEnabled()
    await user.click(screen.getByRole('button', { name: 'Log out everywhere' }))
    expect(await screen.findByText('You are logged out on every device.')).toBeInTheDocument()
  })

  it('deletes the account only with the right password', async () => {
    const { user, engine } = await renderSignedIn('/account')
    await user.click(screen.getByRole('button', { name: 'Delete account' }))
    const dialog = await screen.findByRole('dialog', { name: 'Delete your account?' })
    await user.type(within(dialog).getByLabelText('Password'), 'nope')
    await user.click(within(dialog).getByRole('button', { name: 'Delete forever' }))
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('The password is wrong.')
    expect(engine.deleted).toBe(false)
    await user.clear(within(dialog).getByLabelText('Password'))
    await user.type(within(dialog).getByLabelText('Password'), password)
    await user.click(within(dialog).getByRole('button', { name: 'Delete forever' }))
    expect(await screen.findByText('Your account was deleted.')).toBeInTheDocument()
    expect(engine.deleted).toBe(true)
  })
})

describe('session ended', () => {
  it('asks for the password over the chat and keeps the composer’s text', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:bob@example.org'))
    const box = screen.getByRole('textbox', { name: 'Message' })
    await user.type(box, 'unfinished message')
    act(() => engine.endSession())
    const dialog = await screen.findByRole('dialog', { name: 'Sign in again' })
    await user.type(within(dialog).getByLabelText('Password'), 'wrong')
    await user.click(within(dialog).getByRole('button', { name: 'Sign in' }))
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('Wrong username or password.')
    await user.clear(within(dialog).getByLabelText('Password'))
    await user.type(within(dialog).getByLabelText('Password'), password)
    await user.click(within(dialog).getByRole('button', { name: 'Sign in' }))
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Sign in again' })).not.toBeInTheDocument())
    // the same element, never unmounted, with the text still in it
    expect(screen.getByRole('textbox', { name: 'Message' })).toBe(box)
    expect(box).toHaveValue('unfinished message')
    expect(engine.calls.filter((c) => c.method === 'resume')).toHaveLength(2)
  })
})

describe('theme', () => {
  it('toggles dark mode and remembers the choice', async () => {
    const { user } = await renderSignedIn('/')
    const toggle = screen.getByRole('button', { name: 'Toggle dark mode' })
    expect(toggle).toHaveAttribute('aria-pressed', 'false')
    await user.click(toggle)
    expect(screen.getByRole('button', { name: 'Toggle dark mode' })).toHaveAttribute('aria-pressed', 'true')
    expect(localStorage.getItem('privateline.theme')).toBe('dark')
  })
})
