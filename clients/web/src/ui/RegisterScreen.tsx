import { Alert, Box, Button, LinearProgress, Link, TextField, Typography } from '@mui/material'
import { useEffect, useState, type FormEvent } from 'react'
import { Link as RouterLink } from 'react-router-dom'
import type { Auth, Engine, Progress } from '../engine/types'
import { AuthLayout, UsernameField } from './AuthLayout'
import { errorMessage } from './errors'
import { minPasswordLength, passwordStrength } from './passwordStrength'
import { ProgressSteps } from './progress'

const strengthColor = { empty: 'inherit', 'too-short': 'error', weak: 'error', fair: 'warning', good: 'info', strong: 'success' } as const

/** Hook: the homeserver's name, for "@name" after the username. */
export function useServerName(auth: Auth): string | null {
  const [name, setName] = useState<string | null>(null)
  useEffect(() => {
    let live = true
    auth.serverName().then((n) => live && setName(n), () => live && setName(null))
    return () => {
      live = false
    }
  }, [auth])
  return name
}

export function RegisterScreen({ auth, onEngine }: { auth: Auth; onEngine: (e: Engine) => void }) {
  const server = useServerName(auth)
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [repeat, setRepeat] = useState('')
  const [touched, setTouched] = useState(false)
  const [progress, setProgress] = useState<Progress | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const strength = passwordStrength(password)

  const usernameError = touched && username.trim() === '' ? 'Choose a username.' : null
  const passwordError = touched && password.length < minPasswordLength ? `Use at least ${minPasswordLength} characters.` : null
  const repeatError = touched && repeat !== password ? 'The passwords do not match.' : null

  async function submit(e: FormEvent) {
    e.preventDefault()
    setTouched(true)
    setError(null)
    if (username.trim() === '' || password.length < minPasswordLength || repeat !== password) return
    setBusy(true)
    setProgress('deriving')
    try {
      const engine = await auth.register(username.trim(), password, setProgress)
      onEngine(engine)
    } catch (err) {
      setError(errorMessage(err))
      setBusy(false)
      setProgress(null)
    }
  }

  return (
    <AuthLayout title="Create your account">
      <Box component="form" noValidate onSubmit={submit} sx={{ display: 'flex', flexDirection: 'column', gap: 2 }}>
        {error && <Alert severity="error">{error}</Alert>}
        <UsernameField
          value={username}
          onChange={setUsername}
          server={server}
          disabled={busy}
          error={!!usernameError}
          helperText={usernameError ?? (server ? `Your address will be ${username.trim() || 'name'}@${server}` : ' ')}
        />
        <Box>
          <TextField
            label="Password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete="new-password"
            disabled={busy}
            fullWidth
            error={!!passwordError}
            slotProps={{ htmlInput: { 'aria-describedby': 'password-strength' } }}
          />
          <LinearProgress
            variant="determinate"
            value={strength.score}
            color={strength.level === 'empty' ? 'inherit' : strengthColor[strength.level]}
            aria-hidden
            sx={{ mt: 1, height: 4, borderRadius: 2, opacity: strength.level === 'empty' ? 0.3 : 1 }}
          />
          <Typography id="password-strength" variant="body2" color={passwordError ? 'error' : 'text.secondary'} sx={{ mt: 0.5 }}>
            {passwordError ?? strength.hint}
          </Typography>
        </Box>
        <TextField
          label="Repeat password"
          type="password"
          value={repeat}
          onChange={(e) => setRepeat(e.target.value)}
          autoComplete="new-password"
          disabled={busy}
          error={!!repeatError}
          helperText={repeatError ?? ' '}
        />
        <Button type="submit" variant="contained" size="large" disabled={busy}>
          Create account
        </Button>
        {progress && (
          <ProgressSteps steps={['deriving', 'generating', 'registering']} current={progress} label="Creating your account" />
        )}
        <Typography variant="body2" sx={{ textAlign: 'center' }}>
          Already have an account?{' '}
          <Link component={RouterLink} to="/login">
            Sign in
          </Link>
        </Typography>
      </Box>
    </AuthLayout>
  )
}
