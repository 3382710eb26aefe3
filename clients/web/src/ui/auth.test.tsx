// @vitest-environment jsdom
import './testing/setup'
import { describe, expect, it } from 'vitest'
import { screen, within } from '@testing-library/react'
import { newAuth, password, renderAt } from './testing/render'
import { passwordStrength } from './passwordStrength'

describe('register', () => {
  it('shows the server name, a strength hint, each key step, then the app', async () => {
    const auth = newAuth()
    const { user } = renderAt(auth, '/register')
    expect(await screen.findByText('@example.org')).toBeInTheDocument()
    const pw = screen.getByLabelText('Password', { selector: 'input' })
    await user.type(await screen.findByRole('textbox', { name: 'Username' }), 'bob')
    await user.type(pw, 'password1')
    expect(screen.getByText(/Weak: easy to guess.*very common password/)).toBeInTheDocument()
    await user.clear(pw)
    await user.type(pw, 'violet Tractor 42 harbour!')
    expect(screen.getByText(/^Strong\./)).toBeInTheDocument()
    await user.type(screen.getByLabelText('Repeat password'), 'violet Tractor 42 harbour?')
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    expect(screen.getByText('The passwords do not match.')).toBeInTheDocument()

    await user.clear(screen.getByLabelText('Repeat password'))
    await user.type(screen.getByLabelText('Repeat password'), 'violet Tractor 42 harbour!')
    auth.progressGate.close()
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    const bar = await screen.findByRole('progressbar', { name: 'Creating your account' })
    expect(bar).toHaveAttribute('aria-valuetext', 'Deriving keys from your password')
    expect(screen.getByRole('button', { name: 'Create account' })).toBeDisabled()
    auth.progressGate.release()
    auth.progressGate.close()
    await screen.findByText('Generating your encryption keys…')
    auth.progressGate.release()

    await screen.findByRole('navigation', { name: 'Conversations' })
    const banner = screen.getByRole('banner')
    expect(within(banner).getByRole('heading', { name: 'PrivateLine' })).toBeInTheDocument()
    expect(screen.getByText('No conversation selected')).toBeInTheDocument()
    expect(screen.getByText('bob@example.org')).toBeInTheDocument()
    expect(window.location.pathname).toBe('/')
  })

  it('says plainly when the username is taken', async () => {
    const auth = newAuth()
    const { user } = renderAt(auth, '/register')
    await user.type(await screen.findByRole('textbox', { name: 'Username' }), 'alice')
    await user.type(screen.getByLabelText('Password', { selector: 'input' }), 'violet Tractor 42')
    await user.type(screen.getByLabelText('Repeat password'), 'violet Tractor 42')
    await user.click(screen.getByRole('button', { name: 'Create account' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('That username is taken.')
    expect(screen.getByRole('button', { name: 'Create account' })).toBeEnabled()
  })
})

describe('login', () => {
  it('shows the engine’s message on a wrong password, then signs in with the right one', async () => {
    const auth = newAuth()
    const { user } = renderAt(auth, '/')
    await user.type(await screen.findByRole('textbox', { name: 'Username' }), 'alice')
    await user.type(screen.getByLabelText('Password'), 'wrong password')
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong username or password')
    expect(auth.engines).toHaveLength(0)

    await user.clear(screen.getByLabelText('Password'))
    await user.type(screen.getByLabelText('Password'), password)
    await user.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByRole('navigation', { name: 'Conversations' })).toBeInTheDocument()
    expect(auth.engines).toHaveLength(1)
  })

  it('links to registration', async () => {
    const { user } = renderAt(newAuth(), '/login')
    await user.click(await screen.findByRole('link', { name: 'Create an account' }))
    expect(await screen.findByRole('button', { name: 'Create account' })).toBeInTheDocument()
  })
})

describe('password strength', () => {
  it.each([
    ['', 'empty'],
    ['abc', 'too-short'],
    ['12345678', 'weak'],
    ['aaaaaaaaaaaa', 'weak'],
    ['Tr0ub4dor', 'fair'],
    ['violet tractor harbour', 'strong'],
  ])('%j is %s', (p, level) => {
    expect(passwordStrength(p).level).toBe(level)
  })
})
