import { Alert, Button, CircularProgress, Dialog, DialogActions, DialogContent, DialogContentText, DialogTitle, TextField } from '@mui/material'
import { useState, type FormEvent } from 'react'
import { useEngine, useEngineState } from './context'
import { errorMessage } from './errors'

/**
 * Shown over the app when the server ended the session: everything behind it
 * (the open chat, the composer's text) stays mounted while the user signs in
 * again.
 */
export function SessionEndedDialog({ onSignedOut }: { onSignedOut: (message: string) => void }) {
  const engine = useEngine()
  const { sessionEnded, me } = useEngineState()
  const [password, setPassword] = useState('')
  const [busy, setBusy] = useState<'resume' | 'logout' | null>(null)
  const [error, setError] = useState<string | null>(null)

  async function submit(e: FormEvent) {
    e.preventDefault()
    if (password === '') {
      setError('Enter your password.')
      return
    }
    setBusy('resume')
    setError(null)
    try {
      await engine.resume(password)
      setPassword('')
    } catch (err) {
      setError(errorMessage(err))
    } finally {
      setBusy(null)
    }
  }

  async function logout() {
    setBusy('logout')
    setError(null)
    try {
      await engine.logout()
      onSignedOut('You are logged out.')
    } catch (err) {
      setError(errorMessage(err))
      setBusy(null)
    }
  }

  return (
    <Dialog open={sessionEnded} aria-labelledby="session-ended-title" fullWidth maxWidth="xs" disableEscapeKeyDown>
      <form onSubmit={submit} noValidate>
        <DialogTitle id="session-ended-title">Sign in again</DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ mb: 2 }}>
            Your session ended on the server. Enter the password of <strong>{me}</strong> to carry on where you were.
          </DialogContentText>
          {error && <Alert severity="error" sx={{ mb: 2 }}>{error}</Alert>}
          <TextField
            label="Password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete="current-password"
            autoFocus
            fullWidth
            disabled={busy !== null}
          />
        </DialogContent>
        <DialogActions sx={{ px: 3, pb: 2 }}>
          <Button onClick={logout} disabled={busy !== null} color="inherit">
            Log out
          </Button>
          <Button type="submit" variant="contained" disabled={busy !== null} startIcon={busy === 'resume' ? <CircularProgress size={16} color="inherit" aria-hidden /> : undefined}>
            Sign in
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  )
}
