import { Alert, Button, CircularProgress, Dialog, DialogActions, DialogContent, DialogContentText, DialogTitle, TextField } from '@mui/material'
import { useState, type FormEvent } from 'react'
import { useNavigate } from 'react-router-dom'
import { useEngine } from './context'
import { errorMessage } from './errors'
import { conversationPath } from './format'

/** "alice@a.org, bob@b.org carol@c.org" → the addresses. */
export function parseAddresses(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((a) => a.trim().toLowerCase()).filter(Boolean))]
}

function useAction() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  async function run(f: () => Promise<void>) {
    setBusy(true)
    setError(null)
    try {
      await f()
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setBusy(false)
    }
  }
  return { busy, error, setError, run }
}

export function NewChatDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const engine = useEngine()
  const navigate = useNavigate()
  const [address, setAddress] = useState('')
  const { busy, error, setError, run } = useAction()

  function close() {
    if (busy) return
    setAddress('')
    setError(null)
    onClose()
  }

  function submit(e: FormEvent) {
    e.preventDefault()
    const a = address.trim()
    if (a === '') {
      setError('Enter the address of the person to write to, like alice@example.org.')
      return
    }
    void run(async () => {
      const id = await engine.openDirect(a)
      setAddress('')
      onClose()
      navigate(conversationPath(id))
    })
  }

  return (
    <Dialog open={open} onClose={close} fullWidth maxWidth="xs" aria-labelledby="new-chat-title">
      <form onSubmit={submit} noValidate>
        <DialogTitle id="new-chat-title">New chat</DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ mb: 2 }}>
            Write their full address, name@server. People on other servers are reached the same way. Their keys are looked up and
            checked against their server’s key directory before the first message.
          </DialogContentText>
          {error && <Alert severity="error" sx={{ mb: 2 }}>{error}</Alert>}
          <TextField
            label="Address"
            placeholder="alice@example.org"
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            autoFocus
            fullWidth
            disabled={busy}
            slotProps={{ htmlInput: { autoCapitalize: 'none', spellCheck: false, inputMode: 'email' } }}
          />
        </DialogContent>
        <DialogActions sx={{ px: 3, pb: 2 }}>
          <Button onClick={close} disabled={busy}>Cancel</Button>
          <Button type="submit" variant="contained" disabled={busy} startIcon={busy ? <CircularProgress size={16} color="inherit" aria-hidden /> : undefined}>
            Start chat
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  )
}

export function NewGroupDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const engine = useEngine()
  const navigate = useNavigate()
  const [name, setName] = useState('')
  const [members, setMembers] = useState('')
  const { busy, error, setError, run } = useAction()

  function close() {
    if (busy) return
    setName('')
    setMembers('')
    setError(null)
    onClose()
  }

  function submit(e: FormEvent) {
    e.preventDefault()
    const list = parseAddresses(members)
    if (list.length === 0) {
      setError('Add at least one member by address.')
      return
    }
    void run(async () => {
      const id = await engine.createGroup(name.trim(), list)
      setName('')
      setMembers('')
      onClose()
      navigate(conversationPath(id))
    })
  }

  return (
    <Dialog open={open} onClose={close} fullWidth maxWidth="xs" aria-labelledby="new-group-title">
      <form onSubmit={submit} noValidate>
        <DialogTitle id="new-group-title">New group</DialogTitle>
        <DialogContent sx={{ display: 'flex', flexDirection: 'column', gap: 2 }}>
          {error && <Alert severity="error">{error}</Alert>}
          <TextField label="Group name" value={name} onChange={(e) => setName(e.target.value)} autoFocus fullWidth disabled={busy} sx={{ mt: 1 }} />
          <TextField
            label="Members"
            placeholder="bob@example.org, carol@example.org"
            helperText="Addresses, separated by commas or spaces"
            value={members}
            onChange={(e) => setMembers(e.target.value)}
            fullWidth
            multiline
            minRows={2}
            disabled={busy}
            slotProps={{ htmlInput: { autoCapitalize: 'none', spellCheck: false } }}
          />
        </DialogContent>
        <DialogActions sx={{ px: 3, pb: 2 }}>
          <Button onClick={close} disabled={busy}>Cancel</Button>
          <Button type="submit" variant="contained" disabled={busy} startIcon={busy ? <CircularProgress size={16} color="inherit" aria-hidden /> : undefined}>
            Create group
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  )
}
