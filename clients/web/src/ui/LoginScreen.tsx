import { Alert, Box, Button, Link, TextField, Typography } from '@mui/material'
import { useState, type FormEvent } from 'react'
import { Link as RouterLink } from 'react-router-dom'
import type { Auth, Engine, Progress } from '../engine/types'
import { AuthLayout, UsernameField } from './AuthLayout'
import { errorMessage } from './errors'
import { ProgressSteps } from './progress'
import { useServerName } from './RegisterScreen'

export function LoginScreen({ auth, onEngine, notice }: { auth: Auth; onEngine: (e: Engine) => void; notice?: string | null }) {
  const server = useServerName(auth)
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [progress, setProgress] = useState<Progress | null>(null)
  const [error, setError] = useState<string | null>(null)
  const busy = progress !== null

  async function submit(e: FormEvent) {
    e.preventDefault()
    setError(null)
    if (username.trim() === '' || password === '') {
      setError('Enter your username and password.')
      return
    }
    setProgress('deriving')
    try {
      const engine = await auth.login(username.trim(), password, setProgress)
      onEngine(engine)
    } catch (err) {
      setError(errorMessage(err))
      setProgress(null)
    }
  }

  return (
    <AuthLayout title="Welcome back">
      <Box component="form" noValidate onSubmit={submit} sx={{ display: 'flex', flexDirection: 'column', gap: 2 }}>
        {notice && !error && <Alert severity="info">{notice}</Alert>}
        {error && <Alert severity="error">{error}</Alert>}
        <UsernameField value={username} onChange={setUsername} server={server} disabled={busy} />
        <TextField
          label="Password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="current-password"
          disabled={busy}
        />
        <Button type="submit" variant="contained" size="large" disabled={busy}>
          Sign in
        </Button>
        {progress && (
          <ProgressSteps steps={['deriving', 'logging_in', 'unwrapping', 'loading']} current={progress} label="Signing in" />
        )}
        <Typography variant="body2" sx={{ textAlign: 'center' }}>
          New here?{' '}
          <Link component={RouterLink} to="/register">
            Create an account
          </Link>
        </Typography>
      </Box>
    </AuthLayout>
  )
}
