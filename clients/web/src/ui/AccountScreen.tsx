import {
  Alert, Box, Button, CircularProgress, Dialog, DialogActions, DialogContent, DialogContentText, DialogTitle, Divider,
  FormControlLabel, Paper, Switch, TextField, Typography,
} from '@mui/material'
import LogoutIcon from '@mui/icons-material/Logout'
import DevicesIcon from '@mui/icons-material/DevicesOther'
import DeleteForeverIcon from '@mui/icons-material/DeleteForeverOutlined'
import QrIcon from '@mui/icons-material/QrCodeScanner'
import { useState, type ChangeEvent, type FormEvent, type ReactNode } from 'react'
import type { PushState } from '../engine/types'
import { NameAvatar } from './Avatar'
import { RetentionSelect } from './chat/DetailsDrawer'
import { useEngine, useEngineState } from './context'
import { errorMessage } from './errors'
import { FileButton } from './FileButton'
import { minPasswordLength, passwordStrength } from './passwordStrength'
import { decodeQrImage } from './qrScan'

function Section({ title, children, id }: { title: string; children: ReactNode; id: string }) {
  return (
    <Paper component="section" variant="outlined" aria-labelledby={id} sx={{ p: { xs: 2, sm: 3 }, borderRadius: 3 }}>
      <Typography id={id} component="h3" variant="h3" sx={{ mb: 2 }}>
        {title}
      </Typography>
      {children}
    </Paper>
  )
}

type Result = { severity: 'success' | 'error'; text: string } | null

function ScanSection() {
  const engine = useEngine()
  const [busy, setBusy] = useState(false)
  const [result, setResult] = useState<Result>(null)
  async function scan(files: File[]) {
    setBusy(true)
    setResult(null)
    try {
      const who = await engine.verifyScanned(await decodeQrImage(files[0]))
      setResult({ severity: 'success', text: `${who} verified` })
    } catch (err) {
      setResult({ severity: 'error', text: errorMessage(err) })
    } finally {
      setBusy(false)
    }
  }
  return (
    <Section title="Verify a contact" id="scan-title">
      <Typography color="text.secondary" sx={{ mb: 2 }}>
        Safety codes are per contact. Scan a picture of a contact’s code (from their Verify screen) and it is checked against all your contacts.
      </Typography>
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 2 }}>
        <FileButton inputLabel="Scan QR image" accept="image/*" onFiles={scan} variant="outlined" startIcon={<QrIcon />} disabled={busy}>
          Choose an image
        </FileButton>
        {busy && <CircularProgress size={24} aria-label="Checking the code" />}
      </Box>
      {result && <Alert severity={result.severity} sx={{ mt: 2 }}>{result.text}</Alert>}
    </Section>
  )
}

/** Why the switch cannot be used, or what it does. */
const pushHelp: Record<PushState, string> = {
  unsupported: 'This browser cannot show notifications while PrivateLine is closed.',
  unavailable: 'This server does not send notifications while PrivateLine is closed.',
  denied: 'Notifications are blocked for PrivateLine in this browser. Allow them in the site settings (the icon left of the address), then reload this page.',
  off: 'A notification says only “New message” and how many are unread: never who wrote or what. Your browser’s push service carries it, and learns nothing more.',
  on: 'A notification says only “New message” and how many are unread: never who wrote or what. Your browser’s push service carries it, and learns nothing more.',
}

function NotificationsSection() {
  const engine = useEngine()
  const { push, pushError } = useEngineState()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const usable = push === 'on' || push === 'off'

  function change(e: ChangeEvent<HTMLInputElement>) {
    setError(null)
    setBusy(true)
    // Called in the click itself: the browser asks for the permission only
    // with the user's gesture.
    const done = e.target.checked ? engine.enablePush() : engine.disablePush()
    done.catch((err: unknown) => setError(errorMessage(err))).finally(() => setBusy(false))
  }

  const shownError = error ?? pushError
  return (
    <Section title="Notifications" id="notifications-title">
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
        <FormControlLabel
          control={
            <Switch
              checked={push === 'on'}
              onChange={change}
              disabled={!usable || busy}
              slotProps={{ input: { role: 'switch', 'aria-describedby': 'push-help' } }}
            />
          }
          label="Notifications when PrivateLine is closed"
        />
        {busy && <CircularProgress size={20} aria-label={push === 'on' ? 'Turning notifications off' : 'Turning notifications on'} />}
      </Box>
      <Typography id="push-help" color="text.secondary" sx={{ mt: 1 }}>
        {pushHelp[push]}
      </Typography>
      {shownError && <Alert severity="error" sx={{ mt: 2 }}>{shownError}</Alert>}
    </Section>
  )
}

function ChangePassword() {
  const engine = useEngine()
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const [repeat, setRepeat] = useState('')
  const [busy, setBusy] = useState(false)
  const [result, setResult] = useState<Result>(null)
  const strength = passwordStrength(next)

  async function submit(e: FormEvent) {
    e.preventDefault()
    setResult(null)
    if (current === '') return setResult({ severity: 'error', text: 'Enter your current password.' })
    if (next.length < minPasswordLength) return setResult({ severity: 'error', text: `The new password needs at least ${minPasswordLength} characters.` })
    if (next !== repeat) return setResult({ severity: 'error', text: 'The new passwords do not match.' })
    setBusy(true)
    try {
      await engine.changePassword(current, next)
      setCurrent('')
      setNext('')
      setRepeat('')
      setResult({ severity: 'success', text: 'Your password is changed.' })
    } catch (err) {
      setResult({ severity: 'error', text: errorMessage(err) })
    } finally {
      setBusy(false)
    }
  }

  return (
    <Section title="Change password" id="password-title">
      <Box component="form" noValidate onSubmit={submit} sx={{ display: 'flex', flexDirection: 'column', gap: 2, maxWidth: 420 }}>
        <TextField label="Current password" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} disabled={busy} />
        <TextField label="New password" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} disabled={busy} helperText={strength.hint} />
        <TextField label="Repeat new password" type="password" autoComplete="new-password" value={repeat} onChange={(e) => setRepeat(e.target.value)} disabled={busy} />
        {result && <Alert severity={result.severity}>{result.text}</Alert>}
        <Box>
          <Button type="submit" variant="contained" disabled={busy} startIcon={busy ? <CircularProgress size={16} color="inherit" aria-hidden /> : undefined}>
            Change password
          </Button>
        </Box>
      </Box>
    </Section>
  )
}

function DeleteAccountDialog({ open, onClose, onDeleted }: { open: boolean; onClose: () => void; onDeleted: () => void }) {
  const engine = useEngine()
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  async function submit(e: FormEvent) {
    e.preventDefault()
    if (password === '') return setError('Enter your password to confirm.')
    setBusy(true)
    setError(null)
    try {
      await engine.deleteAccount(password)
      onDeleted()
    } catch (err) {
      setError(errorMessage(err))
      setBusy(false)
    }
  }
  const close = () => {
    if (busy) return
    setPassword('')
    setError(null)
    onClose()
  }
  return (
    <Dialog open={open} onClose={close} aria-labelledby="delete-title" fullWidth maxWidth="xs">
      <form onSubmit={submit} noValidate>
        <DialogTitle id="delete-title">Delete your account?</DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ mb: 2 }}>
            Your keys, messages and groups are deleted from the server and this device. This cannot be undone.
          </DialogContentText>
          {error && <Alert severity="error" sx={{ mb: 2 }}>{error}</Alert>}
          <TextField label="Password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} autoFocus fullWidth disabled={busy} />
        </DialogContent>
        <DialogActions sx={{ px: 3, pb: 2 }}>
          <Button onClick={close} disabled={busy}>Cancel</Button>
          <Button type="submit" color="error" variant="contained" disabled={busy} startIcon={busy ? <CircularProgress size={16} color="inherit" aria-hidden /> : <DeleteForeverIcon />}>
            Delete forever
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  )
}

/** /account — address, default retention, notifications, scanning a contact's code, password, sessions, deletion. */
export function AccountScreen({ onSignedOut }: { onSignedOut: (message: string) => void }) {
  const engine = useEngine()
  const { me, defaultRetentionSeconds } = useEngineState()
  const [busy, setBusy] = useState<'logout' | 'everywhere' | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [deleting, setDeleting] = useState(false)

  async function leave(kind: 'logout' | 'everywhere') {
    setBusy(kind)
    setError(null)
    try {
      if (kind === 'logout') await engine.logout()
      else await engine.logoutEverywhere()
      onSignedOut(kind === 'logout' ? 'You are logged out.' : 'You are logged out on every device.')
    } catch (err) {
      setError(errorMessage(err))
      setBusy(null)
    }
  }

  return (
    <Box sx={{ flex: 1, overflowY: 'auto' }}>
      <Box sx={{ maxWidth: 720, mx: 'auto', p: { xs: 2, sm: 4 }, display: 'flex', flexDirection: 'column', gap: 3 }}>
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 2 }}>
          <NameAvatar name={me} size={56} />
          <Box sx={{ minWidth: 0 }}>
            <Typography component="h2" variant="h4" sx={{ fontWeight: 700, fontSize: { xs: '1.6rem', sm: '2rem' } }}>
              Account
            </Typography>
            <Typography color="text.secondary" sx={{ overflowWrap: 'anywhere' }}>
              Your address: <Box component="strong" sx={{ color: 'text.primary' }}>{me}</Box>
            </Typography>
          </Box>
        </Box>
        <Section title="Privacy" id="privacy-title">
          <RetentionSelect
            id="default-retention"
            label="Default disappearing time"
            value={defaultRetentionSeconds}
            onChange={(s) => engine.setDefaultRetention(s)}
            helper="Applies to conversations you start from now on."
          />
        </Section>
        <NotificationsSection />
        <ScanSection />
        <ChangePassword />
        <Section title="Sessions" id="sessions-title">
          {error && <Alert severity="error" sx={{ mb: 2 }}>{error}</Alert>}
          <Box sx={{ display: 'flex', gap: 1.5, flexWrap: 'wrap' }}>
            <Button variant="outlined" onClick={() => leave('logout')} disabled={busy !== null} startIcon={busy === 'logout' ? <CircularProgress size={16} color="inherit" aria-hidden /> : <LogoutIcon />}>
              Log out
            </Button>
            <Button variant="outlined" onClick={() => leave('everywhere')} disabled={busy !== null} startIcon={busy === 'everywhere' ? <CircularProgress size={16} color="inherit" aria-hidden /> : <DevicesIcon />}>
              Log out everywhere
            </Button>
          </Box>
        </Section>
        <Section title="Danger zone" id="danger-title">
          <Typography color="text.secondary" sx={{ mb: 2 }}>Deleting your account removes your keys and messages for good.</Typography>
          <Divider sx={{ mb: 2 }} />
          <Button color="error" variant="contained" startIcon={<DeleteForeverIcon />} onClick={() => setDeleting(true)}>
            Delete account
          </Button>
        </Section>
      </Box>
      <DeleteAccountDialog open={deleting} onClose={() => setDeleting(false)} onDeleted={() => onSignedOut('Your account was deleted.')} />
    </Box>
  )
}
