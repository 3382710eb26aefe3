import { Box, InputAdornment, Paper, TextField, Typography } from '@mui/material'
import LockIcon from '@mui/icons-material/LockOutlined'
import type { ReactNode } from 'react'
import { Wordmark } from './Logo'
import { ThemeToggle } from './ThemeToggle'

/** The frame of the sign-in and sign-up pages: wordmark, a card, a line on encryption. */
export function AuthLayout({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Box sx={{ minHeight: '100dvh', display: 'flex', flexDirection: 'column', bgcolor: 'background.default' }}>
      <Box component="header" sx={{ display: 'flex', justifyContent: 'space-between', alignItems: 'center', px: 3, py: 2 }}>
        <Wordmark as="h1" />
        <ThemeToggle />
      </Box>
      <Box component="main" sx={{ flex: 1, display: 'flex', alignItems: { xs: 'flex-start', sm: 'center' }, justifyContent: 'center', px: 2, pb: 6 }}>
        <Paper variant="outlined" sx={{ width: '100%', maxWidth: 420, p: { xs: 3, sm: 4 }, borderRadius: 3 }}>
          <Typography component="h2" variant="h5" sx={{ fontWeight: 700, mb: 2 }}>
            {title}
          </Typography>
          {children}
        </Paper>
      </Box>
      <Box component="footer" sx={{ display: 'flex', justifyContent: 'center', alignItems: 'center', gap: 1, pb: 3, px: 3, color: 'text.secondary', textAlign: 'center' }}>
        <LockIcon fontSize="small" aria-hidden />
        <Typography variant="body2">Messages are end-to-end encrypted. Your password never leaves this device.</Typography>
      </Box>
    </Box>
  )
}

/** The username field of the sign-in and sign-up forms, with "@server" after what is typed. */
export function UsernameField(p: {
  value: string
  onChange: (v: string) => void
  server: string | null | undefined
  disabled: boolean
  error?: boolean
  helperText?: ReactNode
}) {
  return (
    <TextField
      label="Username"
      value={p.value}
      onChange={(e) => p.onChange(e.target.value)}
      autoComplete="username"
      autoFocus
      disabled={p.disabled}
      error={p.error}
      helperText={p.helperText}
      slotProps={{
        input: { endAdornment: p.server ? <InputAdornment position="end">{`@${p.server}`}</InputAdornment> : undefined },
        htmlInput: { autoCapitalize: 'none', spellCheck: false },
      }}
    />
  )
}
