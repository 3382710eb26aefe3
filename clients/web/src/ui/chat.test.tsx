// @vitest-environment jsdom
import './testing/setup'
import { describe, expect, it } from 'vitest'
import { act, screen, waitFor, within } from '@testing-library/react'
import { chatPath, renderSignedIn } from './testing/render'
import { liveObjectUrls } from './testing/setup'
import { remoteFileGone, remoteFileUnreachable } from '../engine/errors'

const bob = 'bob@example.org'
const carol = 'carol@example.org'

describe('sidebar', () => {
  it('lists conversations newest first with previews, times and unread badges, and reorders on arrival', async () => {
    const { engine } = await renderSignedIn('/')
    const nav = screen.getByRole('navigation', { name: 'Conversations' })
    // position in the list of the link whose accessible name matches
    const at = (name: RegExp) => within(nav).getAllByRole('link').indexOf(within(nav).getByRole('link', { name }))
    expect(at(/^bob@example\.org.*You: And this one could not be sent\./)).toBe(0)
    expect(at(/^Weekend trip.*erin: Leaving at 9 on Friday, ok\?/)).toBe(1)
    expect(at(/^dave@other\.example/)).toBe(2)
    expect(at(/^carol@example\.org/)).toBe(3)
    expect(within(nav).getByRole('link', { name: /^dave@other\.example/ })).toContainElement(within(nav).getByLabelText('2 unread'))
    expect(within(nav).getByLabelText('1 unread')).toBeInTheDocument()

    act(() => void engine.receive('d:' + carol, carol, 'Are you there?'))
    await waitFor(() => expect(at(/^carol@example\.org.*Are you there\?/)).toBe(0))
    expect(within(nav).getByRole('link', { name: /^carol@example\.org/ })).toContainElement(within(nav).getByLabelText('1 unread', { selector: 'a[href$="carol%40example.org"] *' }))
  })

  it('starts a direct chat from "New chat" and shows a lookup failure', async () => {
    const { user } = await renderSignedIn('/')
    await user.click(screen.getByRole('button', { name: 'New chat' }))
    const dialog = screen.getByRole('dialog', { name: 'New chat' })
    await user.type(within(dialog).getByRole('textbox', { name: 'Address' }), 'nobody@example.org')
    await user.click(within(dialog).getByRole('button', { name: 'Start chat' }))
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('There is no account nobody@example.org.')
    await user.clear(within(dialog).getByRole('textbox', { name: 'Address' }))
    await user.type(within(dialog).getByRole('textbox', { name: 'Address' }), 'erin@example.org')
    await user.click(within(dialog).getByRole('button', { name: 'Start chat' }))
    expect(await screen.findByRole('heading', { level: 2, name: 'erin@example.org' })).toBeInTheDocument()
    expect(window.location.pathname).toBe(chatPath('d:erin@example.org'))
  })

  it('creates a group from "New group"', async () => {
    const { user, engine } = await renderSignedIn('/')
    await user.click(screen.getByRole('button', { name: 'New group' }))
    const dialog = screen.getByRole('dialog', { name: 'New group' })
    await user.type(within(dialog).getByRole('textbox', { name: 'Group name' }), 'Book club')
    await user.type(within(dialog).getByRole('textbox', { name: 'Members' }), 'bob@example.org, erin@example.org')
    await user.click(within(dialog).getByRole('button', { name: 'Create group' }))
    expect(await screen.findByRole('heading', { level: 2, name: 'Book club' })).toBeInTheDocument()
    expect(engine.calls.find((c) => c.method === 'createGroup')?.args).toEqual(['Book club', [bob, 'erin@example.org']])
  })

  it('shows "Offline" when not connected', async () => {
    const { engine } = await renderSignedIn('/')
    expect(screen.queryByText('Offline')).not.toBeInTheDocument()
    act(() => engine.setConnection('offline'))
    expect(screen.getByRole('status')).toHaveTextContent('Offline')
  })
})

describe('chat', () => {
  it('Enter sends, Shift+Enter makes a new line; statuses follow the engine', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:' + bob))
    expect(screen.getByRole('heading', { level: 2, name: bob })).toBeInTheDocument()
    expect(screen.getByText('Verified')).toBeInTheDocument()
    const box = screen.getByRole('textbox', { name: 'Message' })
    engine.sendGate.close()
    await user.type(box, 'first line{Shift>}{Enter}{/Shift}second line')
    expect(box).toHaveValue('first line\nsecond line')
    expect(engine.calls.some((c) => c.method === 'send')).toBe(false)
    await user.keyboard('{Enter}')
    await waitFor(() => expect(box).toHaveValue(''))
    const log = screen.getByRole('log', { name: 'Messages' })
    const mine = within(log).getAllByRole('article').at(-1)!
    expect(mine).toHaveTextContent('first line second line')
    expect(within(mine).getByLabelText('Sending')).toBeInTheDocument()
    expect(engine.calls.find((c) => c.method === 'send')?.args.slice(0, 2)).toEqual(['d:' + bob, 'first line\nsecond line'])
    act(() => engine.sendGate.release())
    expect(await within(mine).findByLabelText('Sent')).toBeInTheDocument()
    const id = engine.getState().messages['d:' + bob].at(-1)!.id
    act(() => engine.waitForServer(id, 'other.example'))
    expect(within(mine).getByLabelText('Waiting for other.example')).toBeInTheDocument()
    expect(within(mine).queryByLabelText('Sent')).toBeNull()
    act(() => engine.deliver(id))
    expect(within(mine).getByLabelText('Delivered')).toBeInTheDocument()
    expect(within(mine).queryByLabelText('Waiting for other.example')).toBeNull()
    act(() => engine.readBy(id, bob))
    expect(within(mine).getByLabelText('Read')).toBeInTheDocument()
  })

  it('shows a failed message with its error and retries it', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:' + bob))
    engine.failNextSend('The server refused the message: too large.')
    await user.type(screen.getByRole('textbox', { name: 'Message' }), 'big one{Enter}')
    const log = screen.getByRole('log', { name: 'Messages' })
    await within(log).findByText('The server refused the message: too large.')
    const failed = within(log).getAllByRole('article').at(-1)!
    expect(within(failed).getByLabelText('Failed')).toBeInTheDocument()
    const retry = within(log).getAllByRole('button', { name: 'Retry' }).at(-1)!
    await user.click(retry)
    expect(await within(failed).findByLabelText('Sent')).toBeInTheDocument()
    expect(within(log).queryByText('The server refused the message: too large.')).not.toBeInTheDocument()
  })

  it('sends with the chosen disappearing timer and an attachment, and shows the countdown', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:' + bob))
    await user.click(screen.getByRole('combobox', { name: 'Disappearing timer' }))
    await user.click(screen.getByRole('option', { name: '1 hour' }))
    const file = new File(['hello'], 'notes.txt', { type: 'text/plain' })
    await user.upload(screen.getByLabelText('Attach file'), file)
    expect(screen.getByRole('button', { name: 'Remove notes.txt' })).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Send' }))
    const call = await waitFor(() => engine.calls.find((c) => c.method === 'send')!)
    expect(call.args[2]).toEqual({ files: [file], expiresInSeconds: 3600 })
    const mine = within(screen.getByRole('log')).getAllByRole('article').at(-1)!
    expect(within(mine).getByRole('button', { name: /Download notes\.txt/ })).toBeInTheDocument()
    expect(within(mine).getByLabelText('Disappears in 1h')).toBeInTheDocument()
  })

  it('decrypts images for display and revokes their URL when they leave the screen', async () => {
    const { engine, view, user } = await renderSignedIn(chatPath('d:' + bob))
    const alert = await screen.findByText('venue-map.png: The file is gone from the server.')
    engine.storeFile('venue-map', new Blob(['png'], { type: 'image/png' }))
    await user.click(within(alert.closest('[role="alert"]') as HTMLElement).getByRole('button', { name: 'Retry' }))
    const img = await screen.findByRole('img', { name: 'venue-map.png' })
    expect(img.getAttribute('src')).toMatch(/^blob:/)
    expect(liveObjectUrls()).toContain(img.getAttribute('src'))
    view.unmount()
    expect(liveObjectUrls()).not.toContain(img.getAttribute('src'))
  })

  it('says when the server of a picture from another homeserver cannot be reached, and shows it on Retry once it can', async () => {
    const { engine, user } = await renderSignedIn(chatPath('d:' + bob))
    const far = 'dave@far.example'
    engine.fileFailures.set('far-photo', remoteFileUnreachable(far))
    act(() => {
      engine.receive('d:' + bob, bob, 'A photo from afar', {
        attachments: [{ fileId: 'far-photo', name: 'far.png', mime: 'image/png', size: 1234 }],
      })
    })
    const note = await screen.findByText(
      "far.png: It is on far.example, the sender's server, which cannot be reached right now. Try again later.",
    )
    // The message's text is shown all the same.
    expect(within(screen.getByRole('log')).getByText('A photo from afar')).toBeInTheDocument()
    engine.fileFailures.delete('far-photo')
    engine.storeFile('far-photo', new Blob(['png'], { type: 'image/png' }))
    await user.click(within(note.closest('[role="alert"]') as HTMLElement).getByRole('button', { name: 'Retry' }))
    const img = await screen.findByRole('img', { name: 'far.png' })
    expect(img.getAttribute('src')).toMatch(/^blob:/)
  })

  it('says a picture is gone from its homeserver without a Retry that cannot help', async () => {
    const { engine } = await renderSignedIn(chatPath('d:' + bob))
    engine.fileFailures.set('far-photo', remoteFileGone('dave@far.example'))
    act(() => {
      engine.receive('d:' + bob, bob, 'A photo from afar', {
        attachments: [{ fileId: 'far-photo', name: 'far.png', mime: 'image/png', size: 1234 }],
      })
    })
    const note = await screen.findByText('far.png: It is no longer available: dave@far.example may have deleted the message on far.example.')
    expect(within(note.closest('[role="alert"]') as HTMLElement).queryByRole('button', { name: 'Retry' })).toBeNull()
  })

  it('removes a message when the engine drops it', async () => {
    const { engine } = await renderSignedIn(chatPath('d:' + bob))
    expect(screen.getByText('Did you get the tickets for Saturday?')).toBeInTheDocument()
    act(() => engine.removeMessageNow('s1'))
    expect(screen.queryByText('Did you get the tickets for Saturday?')).not.toBeInTheDocument()
  })

  it('marks the conversation read when it is on screen and focused', async () => {
    const { engine } = await renderSignedIn(chatPath('d:dave@other.example'))
    act(() => {
      screen.getByRole('textbox', { name: 'Message' }).focus()
      window.dispatchEvent(new Event('focus'))
    })
    await waitFor(() => expect(engine.calls.some((c) => c.method === 'markRead' && c.args[0] === 'd:dave@other.example')).toBe(true))
    expect(within(screen.getByRole('navigation')).queryByLabelText('2 unread')).not.toBeInTheDocument()
  })

  it('blocks the composer when a verified contact’s key changed, until it is verified again', async () => {
    const { user } = await renderSignedIn(chatPath('d:' + carol))
    const alert = screen.getByRole('alert')
    expect(alert).toHaveTextContent('key changed')
    expect(screen.getByRole('textbox', { name: 'Message' })).toBeDisabled()
    await user.click(within(alert).getByRole('button', { name: 'Review' }))
    const dialog = await screen.findByRole('dialog', { name: `Verify ${carol}` })
    await within(dialog).findByTestId('safety-number')
    await user.click(within(dialog).getByRole('button', { name: 'Mark as verified' }))
    expect(await within(dialog).findByText(`${carol} is verified.`)).toBeInTheDocument()
    await user.click(within(dialog).getByRole('button', { name: 'Close' }))
    await waitFor(() => expect(screen.queryByRole('alert')).not.toBeInTheDocument())
    expect(screen.getByRole('textbox', { name: 'Message' })).toBeEnabled()
  })

  it('keeps the draft of each conversation while moving between them', async () => {
    const { user } = await renderSignedIn(chatPath('d:' + bob))
    await user.type(screen.getByRole('textbox', { name: 'Message' }), 'half a thought')
    await user.click(within(screen.getByRole('navigation')).getByRole('link', { name: /^Weekend trip/ }))
    expect(await screen.findByRole('heading', { level: 2, name: 'Weekend trip' })).toBeInTheDocument()
    expect(screen.getByRole('textbox', { name: 'Message' })).toHaveValue('')
    await user.click(within(screen.getByRole('navigation')).getByRole('link', { name: /^bob@example\.org/ }))
    expect(await screen.findByRole('textbox', { name: 'Message' })).toHaveValue('half a thought')
  })
})

describe('conversation details', () => {
  it('sets the retention through the engine', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:' + bob))
    await user.click(screen.getByRole('button', { name: 'Conversation details' }))
    await user.click(await screen.findByRole('combobox', { name: /Messages disappear after/ }))
    await user.click(screen.getByRole('option', { name: '1 day' }))
    await waitFor(() => expect(engine.calls.find((c) => c.method === 'setRetention')?.args).toEqual(['d:' + bob, 86400]))
    expect(screen.getByRole('combobox', { name: /Messages disappear after/ })).toHaveTextContent('1 day')
  })

  it('verifies a contact: safety number, QR code, mark as verified', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:dave@other.example'))
    expect(screen.getByText('Not verified')).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Conversation details' }))
    await user.click(await screen.findByRole('button', { name: 'Verify' }))
    const dialog = await screen.findByRole('dialog', { name: 'Verify dave@other.example' })
    const number = await within(dialog).findByTestId('safety-number')
    const expected = (await engine.safety('dave@other.example')).safetyNumber
    expect(number.textContent).toBe(expected)
    expect(expected).toMatch(/^(\d{5} ){11}\d{5}$/)
    expect(within(dialog).getByRole('img', { name: 'Your safety code' })).toBeInTheDocument()
    expect(within(dialog).getByLabelText('Scan QR image')).toHaveAttribute('type', 'file')
    expect(within(dialog).getByRole('button', { name: 'Scan with camera' })).toBeInTheDocument()
    await user.click(within(dialog).getByRole('button', { name: 'Mark as verified' }))
    await within(dialog).findByText('dave@other.example is verified.')
    await user.click(within(dialog).getByRole('button', { name: 'Close' }))
    expect(await screen.findByText('Verified')).toBeInTheDocument()
  })

  it('shows which servers vouch for the key directory, and a fork the server reports', async () => {
    const { user, engine } = await renderSignedIn(chatPath('d:dave@other.example'))
    engine.witnessing = { vouchedBy: ['b.example', 'c.example'], forks: [] }
    await user.click(screen.getByRole('button', { name: 'Conversation details' }))
    await user.click(await screen.findByRole('button', { name: 'Verify' }))
    let dialog = await screen.findByRole('dialog', { name: 'Verify dave@other.example' })
    expect(await within(dialog).findByText('2 other servers vouch for your server’s key directory: b.example, c.example.')).toBeInTheDocument()
    expect(within(dialog).queryByRole('alert')).toBeNull()
    await user.click(within(dialog).getByRole('button', { name: 'Close' }))

    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Verify dave@other.example' })).toBeNull())
    const reason = 'they are signed with a key other.example used before its current one, and its current key names that key as its own.'
    engine.witnessing = { vouchedBy: [], forks: [{ server: 'other.example', verified: true, reason }] }
    if (!screen.queryByRole('button', { name: 'Verify' })) await user.click(screen.getByRole('button', { name: 'Conversation details' }))
    await user.click(await screen.findByRole('button', { name: 'Verify' }))
    dialog = await screen.findByRole('dialog', { name: 'Verify dave@other.example' })
    const alert = await within(dialog).findByRole('alert')
    expect(alert).toHaveTextContent('Your server reports that the key directory of other.example forked')
    expect(alert).toHaveTextContent(`The evidence checks out: ${reason}`)
    expect(within(dialog).getByText('No other server vouches for your server’s key directory yet.')).toBeInTheDocument()
    // The safety number is still there: the warning is about the directory, not the contact.
    expect(within(dialog).getByTestId('safety-number').textContent).toMatch(/^(\d{5} ){11}\d{5}$/)
  })

  it('manages group members as the owner and leaves the group', async () => {
    const { user, engine } = await renderSignedIn(chatPath('g:trip'))
    await user.click(screen.getByRole('button', { name: 'Conversation details' }))
    const members = await screen.findByRole('list', { name: 'Members' })
    // (each row starts with the avatar's initial)
    expect(within(members).getAllByRole('listitem').map((li) => li.textContent?.slice(1))).toEqual([
      'alice@example.org (you)Owner', 'carol@example.orgAdmin · Key changed', 'erin@example.orgMember',
    ])
    await user.type(screen.getByRole('textbox', { name: 'Add member' }), bob)
    await user.click(screen.getByRole('button', { name: 'Add' }))
    expect(await within(members).findByText(bob)).toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Remove erin@example.org' }))
    await waitFor(() => expect(within(members).queryByText('erin@example.org')).not.toBeInTheDocument())
    expect(screen.queryByRole('button', { name: 'Remove alice@example.org' })).not.toBeInTheDocument()
    await user.click(screen.getByRole('button', { name: 'Leave group' }))
    await waitFor(() => expect(window.location.pathname).toBe('/'))
    expect(engine.getState().conversations.some((c) => c.id === 'g:trip')).toBe(false)
    expect(within(screen.getByRole('navigation')).queryByRole('link', { name: /^Weekend trip/ })).not.toBeInTheDocument()
  })
})
