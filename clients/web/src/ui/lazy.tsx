// Screens that are not needed to sign in are chunks of their own (see
// App.tsx): React.lazy over a named export, with a human message when the
// chunk cannot be fetched (offline before the service worker had cached it,
// or a new version deployed meanwhile).
import { Alert, Box, Button, CircularProgress } from '@mui/material'
import { Component, Suspense, lazy, type ComponentType, type ReactNode } from 'react'

/** A failed import() of one of the app's own chunks. */
export class ChunkLoadError extends Error {
  constructor(cause: unknown) {
    super('This part of PrivateLine could not be loaded. Check your connection, then reload the page.')
    this.name = 'ChunkLoadError'
    ;(this as Error & { cause?: unknown }).cause = cause
  }
}

/** React.lazy for a component a module exports by name: lazyNamed(() => import('./X').then((m) => m.X)). */
export function lazyNamed<P extends object>(load: () => Promise<ComponentType<P>>) {
  return lazy(() =>
    load().then(
      (c) => ({ default: c }),
      (e: unknown) => {
        throw new ChunkLoadError(e)
      },
    ),
  )
}

/** Runs fn when the browser is idle (soon after the current screen has been painted). */
export function whenIdle(fn: () => void): void {
  const ric = (globalThis as { requestIdleCallback?: (cb: () => void, o?: { timeout: number }) => number }).requestIdleCallback
  if (ric) ric(fn, { timeout: 2000 })
  else setTimeout(fn, 1)
}

interface BoundaryState {
  error: unknown
}

/** Shows ChunkLoadError as a message with a reload button; any other error goes on up. */
class ChunkBoundary extends Component<{ children: ReactNode }, BoundaryState> {
  state: BoundaryState = { error: null }

  static getDerivedStateFromError(error: unknown): BoundaryState {
    return { error }
  }

  render() {
    // Not ours: thrown again, to the boundary above (as without this one).
    const { error } = this.state
    if (error instanceof ChunkLoadError) {
      return (
        <Box sx={{ flex: 1, display: 'grid', placeItems: 'center', p: 3 }}>
          <Alert
            severity="error"
            action={
              <Button color="inherit" size="small" onClick={() => window.location.reload()}>
                Reload
              </Button>
            }
          >
            {error.message}
          </Alert>
        </Box>
      )
    }
    if (error) throw error
    return this.props.children
  }
}

/** A spinner while a lazily loaded screen arrives; the fallback can be replaced (the boot screen). */
export function Loading({ label = 'Loading' }: { label?: string }) {
  return (
    <Box sx={{ flex: 1, display: 'grid', placeItems: 'center', p: 3 }}>
      <CircularProgress aria-label={label} />
    </Box>
  )
}

/** Error boundary and Suspense around lazily loaded content. */
export function Lazy({ children, fallback }: { children: ReactNode; fallback?: ReactNode }) {
  return (
    <ChunkBoundary>
      <Suspense fallback={fallback ?? <Loading />}>{children}</Suspense>
    </ChunkBoundary>
  )
}
