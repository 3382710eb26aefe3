import { Box, Typography } from '@mui/material'

/** The mark: a speech bubble with a keyhole. Decorative; the wordmark carries the name. */
export function LogoMark({ size = 28, inverted = false }: { size?: number; inverted?: boolean }) {
  return (
    <Box component="svg" viewBox="0 0 32 32" width={size} height={size} aria-hidden="true" focusable="false" sx={{ flexShrink: 0 }}>
      <defs>
        <linearGradient id="pl-logo" x1="0" y1="0" x2="1" y2="1">
          <stop offset="0" stopColor="#5b7cfa" />
          <stop offset="1" stopColor="#1a3bb8" />
        </linearGradient>
      </defs>
      <path d="M6 4h20a4 4 0 0 1 4 4v13a4 4 0 0 1-4 4H14l-7 5v-5H6a4 4 0 0 1-4-4V8a4 4 0 0 1 4-4z" fill={inverted ? '#ffffff' : 'url(#pl-logo)'} />
      <circle cx="16" cy="12" r="3.2" fill={inverted ? '#2445c9' : '#fff'} />
      <path d="M14.6 14h2.8l1 6h-4.8z" fill={inverted ? '#2445c9' : '#fff'} />
    </Box>
  )
}

/** Logo and name; `as` sets the heading level where it is the page's title. */
export function Wordmark({ as = 'span', size = 28, inverted = false }: { as?: 'h1' | 'span'; size?: number; inverted?: boolean }) {
  return (
    <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
      <LogoMark size={size} inverted={inverted} />
      <Typography component={as} variant="h1" sx={{ fontSize: size * 0.7, m: 0 }}>
        PrivateLine
      </Typography>
    </Box>
  )
}
