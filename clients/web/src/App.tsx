import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react'
import { BrowserRouter, Navigate, Route, Routes, useNavigate } from 'react-router-dom'
import { Alert, Box, CircularProgress, CssBaseline, Snackbar, ThemeProvider, Typography, useMediaQuery } from '@mui/material'
import type { Auth, Engine } from './engine/types'
import { Drafts, DraftsContext, EngineProvider, NotifyContext, ThemeControlContext, type Severity } from './ui/context'
import { makeTheme, type ThemeMode } from './ui/theme'
import { errorMessage } from './ui/errors'
import { LoginScreen } from './ui/LoginScreen'
import { RegisterScreen } from './ui/RegisterScreen'
import { EmptyChat } from './ui/EmptyChat'
import { Lazy, lazyNamed, whenIdle } from './ui/lazy'
import { LogoMark } from './ui/Logo'

// The signed-in screens are chunks of their own, so that the sign-in page
// does not wait for them; they are fetched once the sign-in page is shown
// (or at once after a stored session was restored).
const loadMainLayout = () => import('./ui/MainLayout')
const loadChat = () => import('./ui/chat/ChatScreen')
const loadAccount = () => import('./ui/AccountScreen')
const MainLayout = lazyNamed(() => loadMainLayout().then((m) => m.MainLayout))
const ChatScreen = lazyNamed(() => loadChat().then((m) => m.ChatScreen))
const AccountScreen = lazyNamed(() => loadAccount().then((m) => m.AccountScreen))

function preloadScreens(): void {
  for (const load of [loadMainLayout, loadChat, loadAccount]) load().catch(() => undefined)
}

// The theme choice (not a secret) is the only thing kept in localStorage.
const themeKey = 'privateline.theme'

function storedMode(): ThemeMode | null {
  try {
    const v = localStorage.getItem(themeKey)
    return v === 'light' || v === 'dark' ? v : null
  } catch {
    return null
  }
}

function AppTheme({ children }: { children: ReactNode }) {
  const systemDark = useMediaQuery('(prefers-color-scheme: dark)', { noSsr: true })
  const [chosen, setChosen] = useState<ThemeMode | null>(storedMode)
  const mode: ThemeMode = chosen ?? (systemDark ? 'dark' : 'light')
  const theme = useMemo(() => makeTheme(mode), [mode])
  const control = useMemo(
    () => ({
      mode,
      toggle: () => {
        const next: ThemeMode = mode === 'dark' ? 'light' : 'dark'
        setChosen(next)
        try {
          localStorage.setItem(themeKey, next)
        } catch {
          // private mode: the choice lasts for this page only
        }
      },
    }),
    [mode],
  )
  return (
    <ThemeControlContext.Provider value={control}>
      <ThemeProvider theme={theme}>
        <CssBaseline enableColorScheme />
        {children}
      </ThemeProvider>
    </ThemeControlContext.Provider>
  )
}

interface Note {
  key: number
  message: string
  severity: Severity
}

/** One snackbar at a time for results and failures that have no place on the screen. */
function Notifier({ children }: { children: ReactNode }) {
  const [queue, setQueue] = useState<Note[]>([])
  const [open, setOpen] = useState(true)
  const seq = useRef(0)
  const notify = useCallback((message: string, severity: Severity = 'error') => {
    setQueue((q) => [...q, { key: ++seq.current, message, severity }])
    setOpen(true)
  }, [])
  const current = queue[0]
  return (
    <NotifyContext.Provider value={notify}>
      {children}
      <Snackbar
        key={current?.key}
        open={!!current && open}
        autoHideDuration={current?.severity === 'error' ? 8000 : 4000}
        onClose={(_, reason) => reason !== 'clickaway' && setOpen(false)}
        slotProps={{ transition: { onExited: () => { setQueue((q) => q.slice(1)); setOpen(true) } } }}
        anchorOrigin={{ vertical: 'bottom', horizontal: 'center' }}
      >
        {current ? (
          <Alert severity={current.severity} variant="filled" onClose={() => setOpen(false)} sx={{ width: '100%' }}>
            {current.message}
          </Alert>
        ) : undefined}
      </Snackbar>
    </NotifyContext.Provider>
  )
}

function Opening() {
  return (
    <Box role="main" sx={{ minHeight: '100dvh', display: 'grid', placeItems: 'center' }}>
      <Box sx={{ display: 'flex', flexDirection: 'column', alignItems: 'center', gap: 2 }}>
        <LogoMark size={48} />
        <CircularProgress aria-label="Opening PrivateLine" />
        <Typography color="text.secondary">Opening PrivateLine…</Typography>
      </Box>
    </Box>
  )
}

function Routed({ auth, preload }: { auth: Auth; preload?: () => void }) {
  const [engine, setEngine] = useState<Engine | null>(null)
  const [booting, setBooting] = useState(true)
  const [notice, setNotice] = useState<string | null>(null)
  const drafts = useMemo(() => new Drafts(), [engine])
  const navigate = useNavigate()

  useEffect(() => {
    let live = true
    auth.restore().then(
      (e) => {
        if (!live) return
        setEngine(e)
        setBooting(false)
      },
      (err) => {
        if (!live) return
        setNotice(`Your stored session could not be opened: ${errorMessage(err)} Sign in again.`)
        setBooting(false)
      },
    )
    return () => {
      live = false
    }
  }, [auth])

  const signedIn = useCallback(
    (e: Engine) => {
      setNotice(null)
      setEngine(e)
      navigate('/', { replace: true })
    },
    [navigate],
  )
  const signedOut = useCallback(
    (message: string) => {
      setEngine(null)
      setNotice(message)
      navigate('/login', { replace: true })
    },
    [navigate],
  )

  // Once the first screen is up: the rest of the app's code, while the
  // user types (or reads).
  useEffect(() => {
    if (booting) return
    whenIdle(() => {
      preloadScreens()
      preload?.()
    })
  }, [booting, preload])

  if (booting) return <Opening />

  if (!engine) {
    return (
      <Routes>
        <Route path="/register" element={<RegisterScreen auth={auth} onEngine={signedIn} />} />
        <Route path="/login" element={<LoginScreen auth={auth} onEngine={signedIn} notice={notice} />} />
        <Route path="*" element={<Navigate to="/login" replace />} />
      </Routes>
    )
  }

  return (
    <EngineProvider engine={engine}>
      <DraftsContext.Provider value={drafts}>
        <Routes>
          <Route
            element={
              <Lazy fallback={<Opening />}>
                <MainLayout onSignedOut={signedOut} />
              </Lazy>
            }
          >
            <Route index element={<EmptyChat />} />
            <Route
              path="chat/:id"
              element={
                <Lazy>
                  <ChatScreen />
                </Lazy>
              }
            />
            <Route
              path="account"
              element={
                <Lazy>
                  <AccountScreen onSignedOut={signedOut} />
                </Lazy>
              }
            />
          </Route>
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </DraftsContext.Provider>
    </EngineProvider>
  )
}

/**
 * The whole client. `auth` is the engine's entry point (createAuth() in
 * production); `preload`, if given, is called once the first screen is
 * shown (main.tsx: start fetching the engine's code).
 */
export function App({ auth, preload }: { auth: Auth; preload?: () => void }) {
  return (
    <AppTheme>
      <Notifier>
        <BrowserRouter>
          <Routed auth={auth} preload={preload} />
        </BrowserRouter>
      </Notifier>
    </AppTheme>
  )
}
