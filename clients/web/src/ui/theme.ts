// The app's look: one MUI theme per mode, both with contrast that passes
// WCAG AA for text on the bubble and paper colours used by the screens.
import { createTheme, type Theme } from '@mui/material/styles'

export type ThemeMode = 'light' | 'dark'

/** Dialogs and drawers in dark mode: a step above the paper (#171b23). */
const overlayPaper = '#1e2431'

export function makeTheme(mode: ThemeMode): Theme {
  const dark = mode === 'dark'
  return createTheme({
    palette: {
      mode,
      primary: { main: dark ? '#8ab4ff' : '#2445c9' },
      secondary: { main: dark ? '#7fd8c3' : '#00695c' },
      background: dark ? { default: '#0f1218', paper: '#171b23' } : { default: '#f3f5f9', paper: '#ffffff' },
      text: dark ? { secondary: '#b3bac7' } : { secondary: '#4d5566' },
      success: { main: dark ? '#6fdc8c' : '#1b6e2e' },
      error: { main: dark ? '#ff8a80' : '#c62828' },
      warning: { main: dark ? '#ffb74d' : '#a15c00' },
    },
    shape: { borderRadius: 10 },
    typography: {
      fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
      h1: { fontSize: '1.25rem', fontWeight: 700, letterSpacing: '-0.01em' },
      h2: { fontSize: '1.125rem', fontWeight: 600 },
      h3: { fontSize: '1rem', fontWeight: 600 },
    },
    components: {
      MuiButton: { defaultProps: { disableElevation: true }, styleOverrides: { root: { textTransform: 'none', fontWeight: 600 } } },
      MuiAppBar: { defaultProps: { elevation: 0 } },
      MuiTooltip: { defaultProps: { arrow: true } },
      // Dark dialogs and drawers in the app's blue-grey, not MUI's grey elevation overlay.
      ...(dark && {
        MuiDialog: { styleOverrides: { paper: { backgroundImage: 'none', backgroundColor: overlayPaper } } },
        MuiDrawer: { styleOverrides: { paper: { backgroundImage: 'none', backgroundColor: overlayPaper } } },
      }),
    },
  })
}

/** Bubble colours: own messages on the primary tone, others on a neutral one. */
export function bubbleColors(theme: Theme, outgoing: boolean): { bg: string; fg: string; meta: string } {
  const dark = theme.palette.mode === 'dark'
  if (outgoing) return dark ? { bg: '#2b4a8f', fg: '#ffffff', meta: '#d4defa' } : { bg: '#2445c9', fg: '#ffffff', meta: '#dfe6ff' }
  return dark ? { bg: '#252b36', fg: '#eef1f6', meta: '#b3bac7' } : { bg: '#ffffff', fg: '#1b1f27', meta: '#4d5566' }
}
