import { Box, type SxProps, type Theme } from '@mui/material'
import { VisuallyHidden } from './VisuallyHidden'

/** A server name up to this long is never cut. */
const wholeServer = 20
/** The longest end of a longer server name that is never cut. */
const maxTail = 24

/**
 * How an address is cut when it does not fit: the local part and the start
 * of a long server name may end in an ellipsis; the "@" and the server
 * (of a long one its last two labels with any port) stay whole, so that
 * bob@chat.example.org and bob@chat.example.com stay apart at any width.
 */
export function addressParts(address: string): { local: string; serverHead: string; serverTail: string } | null {
  const at = address.lastIndexOf('@')
  if (at <= 0 || at === address.length - 1) return null
  const local = address.slice(0, at)
  const server = address.slice(at + 1)
  if (server.length <= wholeServer) return { local, serverHead: '', serverTail: server }
  let tail = server.split('.').slice(-2).join('.')
  if (tail.length > maxTail) tail = tail.slice(-maxTail)
  return { local, serverHead: server.slice(0, server.length - tail.length), serverTail: tail }
}

/**
 * A piece of the address as the eye sees it: drawn from an attribute, so
 * that the document's text (copying, find in page, tests by text) holds
 * the address once, in the hidden full copy that is also its accessible name.
 */
function Part({ text, sx }: { text: string; sx: SxProps<Theme> }) {
  return <Box component="span" aria-hidden data-part={text} sx={[{ '&::before': { content: 'attr(data-part)' } }, ...(Array.isArray(sx) ? sx : [sx])]} />
}

const cut = { overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap', minWidth: 0 } as const

/**
 * A piece that may shorten, never below a letter and its ellipsis (a box
 * narrower than the ellipsis would show a bare letter, as if the address
 * were another); a piece that short stays whole.
 */
function shrinkable(text: string, least: string) {
  return text.length <= 3 ? { flexShrink: 0 } : { ...cut, flexShrink: 1, minWidth: least }
}

/**
 * An address on one line that never hides what tells two addresses apart:
 * the local part in the surrounding weight, the server quieter; when it
 * is too long the local part and the start of the server shorten with an
 * ellipsis and the end of the server stays. The full address is its
 * accessible name (screen readers, the browser tests) and its tooltip.
 * Anything else (a group name, a list of members) is shown as it is, cut
 * at the end, with the full text as the tooltip.
 */
export function AddressText({ text, address = true, quiet = 'text.secondary' }: { text: string; address?: boolean; quiet?: string }) {
  const p = address ? addressParts(text) : null
  if (!p) {
    return (
      <Box component="span" title={text} sx={{ ...cut, display: 'block' }}>
        {text}
      </Box>
    )
  }
  return (
    <Box component="span" title={text} sx={{ position: 'relative', display: 'flex', minWidth: 0, overflow: 'hidden', whiteSpace: 'nowrap' }}>
      <VisuallyHidden>{text}</VisuallyHidden>
      <Part text={p.local} sx={shrinkable(p.local, '1.4em')} />
      <Part text="@" sx={{ flexShrink: 0, color: quiet, fontWeight: 400 }} />
      {p.serverHead !== '' && <Part text={p.serverHead} sx={{ ...shrinkable(p.serverHead, '1.5em'), color: quiet, fontWeight: 400 }} />}
      <Part text={p.serverTail} sx={{ flexShrink: 0, color: quiet, fontWeight: 400 }} />
    </Box>
  )
}
