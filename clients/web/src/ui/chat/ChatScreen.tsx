import { Alert, Box, Button, Chip, CircularProgress, IconButton, Tooltip, Typography } from '@mui/material'
import InfoIcon from '@mui/icons-material/InfoOutlined'
import VerifiedIcon from '@mui/icons-material/VerifiedUser'
import TimerIcon from '@mui/icons-material/TimerOutlined'
import { useEffect, useState } from 'react'
import { Link as RouterLink, useParams } from 'react-router-dom'
import type { Contact, Conversation } from '../../engine/types'
import { AddressText } from '../AddressText'
import { NameAvatar } from '../Avatar'
import { useEngine, useEngineState, useNotify } from '../context'
import { errorMessage } from '../errors'
import { durationLabel } from '../format'
import { Lazy, lazyNamed } from '../lazy'
import { Composer } from './Composer'
import { DetailsDrawer } from './DetailsDrawer'
import { MessageList } from './MessageList'

// The verify dialog carries the QR code writer (and, when scanning, the
// reader): a chunk of its own, fetched when it is first opened.
const VerifyDialog = lazyNamed(() => import('../VerifyDialog').then((m) => m.VerifyDialog))

/** Calls markRead while the conversation is on screen, the page visible and focused, and something is unread. */
function useMarkRead(c: Conversation | undefined) {
  const engine = useEngine()
  const notify = useNotify()
  const [attention, setAttention] = useState(() => document.visibilityState === 'visible' && document.hasFocus())
  useEffect(() => {
    const update = () => setAttention(document.visibilityState === 'visible' && document.hasFocus())
    window.addEventListener('focus', update)
    window.addEventListener('blur', update)
    document.addEventListener('visibilitychange', update)
    return () => {
      window.removeEventListener('focus', update)
      window.removeEventListener('blur', update)
      document.removeEventListener('visibilitychange', update)
    }
  }, [])
  const id = c?.id
  const unread = c?.unread ?? 0
  useEffect(() => {
    if (id && attention && unread > 0) engine.markRead(id).catch((err) => notify(errorMessage(err)))
  }, [engine, notify, id, unread, attention])
}

function KeyChangedBanner({ contact, onReview }: { contact: Contact; onReview: () => void }) {
  const engine = useEngine()
  const notify = useNotify()
  const [busy, setBusy] = useState(false)
  async function accept() {
    setBusy(true)
    try {
      await engine.acceptKeyChange(contact.address)
    } catch (err) {
      notify(errorMessage(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <Alert
      severity="warning"
      role="alert"
      sx={{ borderRadius: 0, alignItems: 'center' }}
      action={
        <Box sx={{ display: 'flex', gap: 1 }}>
          {!contact.wasVerified && (
            <Button color="inherit" size="small" onClick={accept} disabled={busy}>
              {busy ? <CircularProgress size={16} color="inherit" aria-label="Accepting" /> : 'Accept'}
            </Button>
          )}
          <Button color="inherit" size="small" variant="outlined" onClick={onReview}>
            Review
          </Button>
        </Box>
      }
    >
      {contact.wasVerified
        ? `${contact.address}’s key changed since you verified it. Sending is paused until you verify the new safety number.`
        : `${contact.address}’s key changed. This happens when they reinstall or sign in on a new device; compare safety numbers to be sure.`}
    </Alert>
  )
}

function ChatView({ c }: { c: Conversation }) {
  const engine = useEngine()
  const notify = useNotify()
  const state = useEngineState()
  const messages = state.messages[c.id]
  const [loading, setLoading] = useState(messages === undefined)
  const [details, setDetails] = useState(false)
  const [verifying, setVerifying] = useState<string | null>(null)
  useMarkRead(c)

  useEffect(() => {
    let live = true
    setLoading(true)
    engine.loadHistory(c.id).then(
      () => live && setLoading(false),
      (err) => {
        if (!live) return
        setLoading(false)
        notify(`The history could not be loaded: ${errorMessage(err)}`)
      },
    )
    return () => {
      live = false
    }
  }, [engine, notify, c.id])

  const peers = c.kind === 'direct' ? (c.peer ? [c.peer] : []) : c.members.map((m) => m.address).filter((a) => a !== state.me)
  const changed = peers.map((a) => state.contacts[a]).filter((x): x is Contact => x?.trust === 'changed')
  const blocked = changed.some((x) => x.wasVerified)
  const peerContact = c.peer ? state.contacts[c.peer] : undefined

  return (
    <Box sx={{ flex: 1, display: 'flex', flexDirection: 'column', minHeight: 0 }}>
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 1.5, px: { xs: 1.5, sm: 2.5 }, py: 1.25, borderBottom: 1, borderColor: 'divider', bgcolor: 'background.paper' }}>
        <NameAvatar name={c.title} group={c.kind === 'group'} />
        <Box sx={{ flex: 1, minWidth: 0 }}>
          <Typography component="h2" variant="h2">
            <AddressText text={c.title} address={c.kind === 'direct'} />
          </Typography>
          <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, color: 'text.secondary' }}>
            {c.kind === 'group' ? (
              <Typography variant="body2" noWrap title={c.members.map((m) => m.address).join(', ')}>{c.members.map((m) => m.address).join(', ')}</Typography>
            ) : peerContact?.trust === 'verified' ? (
              <Box sx={{ display: 'inline-flex', alignItems: 'center', gap: 0.5, color: 'success.main' }}>
                <VerifiedIcon sx={{ fontSize: 16 }} aria-hidden />
                <Typography variant="body2" sx={{ fontWeight: 600 }}>Verified</Typography>
              </Box>
            ) : (
              <Typography variant="body2">{peerContact?.trust === 'changed' ? 'Key changed' : 'Not verified'}</Typography>
            )}
            {c.retentionSeconds !== null && (
              <Chip size="small" icon={<TimerIcon />} label={durationLabel(c.retentionSeconds)} variant="outlined" aria-label={`Messages disappear after ${durationLabel(c.retentionSeconds)}`} sx={{ height: 22 }} />
            )}
          </Box>
        </Box>
        <Tooltip title="Conversation details">
          <IconButton aria-label="Conversation details" onClick={() => setDetails(true)}>
            <InfoIcon />
          </IconButton>
        </Tooltip>
      </Box>
      {changed.map((contact) => (
        <KeyChangedBanner key={contact.address} contact={contact} onReview={() => setVerifying(contact.address)} />
      ))}
      <MessageList messages={messages ?? []} group={c.kind === 'group'} loading={loading} />
      <Composer
        key={c.id}
        conversationId={c.id}
        disabled={blocked}
        disabledReason="Verify the new key to send messages"
      />
      <DetailsDrawer
        c={c}
        open={details}
        onClose={() => setDetails(false)}
        onVerify={() => {
          setDetails(false)
          if (c.peer) setVerifying(c.peer)
        }}
      />
      {verifying && (
        <Lazy fallback={null}>
          <VerifyDialog address={verifying} open onClose={() => setVerifying(null)} />
        </Lazy>
      )}
    </Box>
  )
}

/** /chat/:id — the conversation, or a clear word when it is not there. */
export function ChatScreen() {
  const { id = '' } = useParams()
  const { conversations } = useEngineState()
  const c = conversations.find((x) => x.id === id)
  if (!c) {
    return (
      <Box sx={{ flex: 1, display: 'grid', placeItems: 'center', p: 4, textAlign: 'center' }}>
        <Box>
          <Typography component="h2" variant="h5" sx={{ fontWeight: 700, mb: 1 }}>
            Conversation not found
          </Typography>
          <Typography color="text.secondary" sx={{ mb: 2 }}>
            It may have been left or removed, or it is not on this device yet.
          </Typography>
          <Button component={RouterLink} to="/" variant="contained">
            Back to conversations
          </Button>
        </Box>
      </Box>
    )
  }
  return <ChatView key={c.id} c={c} />
}
