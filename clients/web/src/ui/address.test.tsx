// @vitest-environment jsdom
import './testing/setup'
import { describe, expect, it } from 'vitest'
import { act, screen, within } from '@testing-library/react'
import { addressParts } from './AddressText'
import { chatPath, renderSignedIn } from './testing/render'

const org = 'someone.with.a.rather.long.name@chat.example.org'
const com = 'someone.with.a.rather.long.name@chat.example.com'

describe('long addresses of other servers', () => {
  it('keeps the end of the server whole and lets the local part and the start of the server shorten', () => {
    expect(addressParts(org)).toEqual({ local: 'someone.with.a.rather.long.name', serverHead: '', serverTail: 'chat.example.org' })
    expect(addressParts('bob@messaging.eu-west.example.org')).toEqual({ local: 'bob', serverHead: 'messaging.eu-west.', serverTail: 'example.org' })
    expect(addressParts('bob@localhost:8443')).toEqual({ local: 'bob', serverHead: '', serverTail: 'localhost:8443' })
    expect(addressParts('x@a.very-long-second-level-label-of-a-server.example')).toMatchObject({ serverTail: 'abel-of-a-server.example' })
    expect(addressParts('no address')).toBeNull()
  })

  it('names each conversation, chat heading and member by its full address, and shows the end that tells them apart', async () => {
    const { engine, user } = await renderSignedIn('/')
    for (const a of [org, com]) engine.directory.add(a)
    await act(async () => {
      await engine.openDirect(org)
      await engine.openDirect(com)
    })
    const nav = screen.getByRole('navigation', { name: 'Conversations' })
    const links = [org, com].map((a) => within(nav).getByRole('link', { name: new RegExp('^' + a.replace(/\./g, '\\.') + ' No messages yet') }))
    expect(links[0]).not.toBe(links[1])
    // What a sighted user sees: the two ends, never cut, and the full address as the tooltip.
    const tail = (link: HTMLElement) => [...link.querySelectorAll('[data-part]')].at(-1)!
    expect(tail(links[0])).toHaveAttribute('data-part', 'chat.example.org')
    expect(tail(links[1])).toHaveAttribute('data-part', 'chat.example.com')
    // The local part gives way, the end of the server never (the real layout: e2e/federation.test.mjs at 375 px).
    expect(links[0].querySelector('[data-part]')).toHaveStyle({ flexShrink: '1' })
    expect(tail(links[0])).toHaveStyle({ flexShrink: '0' })
    expect(tail(links[0])).toHaveAttribute('aria-hidden', 'true')
    // The text holds the address once (copying, find in page).
    expect(links[0].textContent?.split('someone').length).toBe(2)
    expect(within(links[0]).getByTitle(org)).toBeInTheDocument()
    expect(within(links[1]).getByTitle(com)).toBeInTheDocument()

    await user.click(links[1])
    expect(window.location.pathname).toBe(chatPath('d:' + com))
    expect(await screen.findByRole('heading', { level: 2, name: com })).toBeInTheDocument()
    expect(screen.queryByRole('heading', { level: 2, name: org })).not.toBeInTheDocument()

    // A group with both: each member listed under the full address.
    const gid = await act(async () => engine.createGroup('Longs', [org, com]))
    await user.click(within(nav).getByRole('link', { name: /^Longs/ }))
    await user.click(await screen.findByRole('button', { name: 'Conversation details' }))
    const members = await screen.findByRole('list', { name: 'Members' })
    const items = within(members).getAllByRole('listitem')
    expect(items).toHaveLength(3)
    ;['alice@example.org', org, com].forEach((a, i) => expect(within(items[i]).getByTitle(a)).toHaveTextContent(a))
    expect(within(members).getByText('(you)')).toBeInTheDocument()
    expect(gid).toMatch(/^g:/)
  })
})
