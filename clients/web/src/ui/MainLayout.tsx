import { AppBar, Box, Chip, Drawer, IconButton, Toolbar, Tooltip, useMediaQuery, useTheme } from '@mui/material'
import MenuIcon from '@mui/icons-material/Menu'
import AccountCircleIcon from '@mui/icons-material/AccountCircleOutlined'
import CloudOffIcon from '@mui/icons-material/CloudOffOutlined'
import SyncIcon from '@mui/icons-material/Sync'
import { useEffect, useState } from 'react'
import { Link as RouterLink, Outlet, useLocation } from 'react-router-dom'
import { useEngineState } from './context'
import { Wordmark } from './Logo'
import { ThemeToggle } from './ThemeToggle'
import { Sidebar } from './Sidebar'
import { SessionEndedDialog } from './SessionEndedDialog'
import { useOpenUnread, wantsConversations } from './openUnread'

export const sidebarWidth = 340

function ConnectionIndicator() {
  const { connection } = useEngineState()
  return (
    <Box role="status" aria-live="polite" sx={{ display: 'flex', alignItems: 'center' }}>
      {connection === 'offline' && (
        <Chip icon={<CloudOffIcon aria-hidden />} label="Offline" size="small" sx={{ bgcolor: 'rgba(0,0,0,0.35)', color: '#fff', '& .MuiChip-icon': { color: '#fff' } }} />
      )}
      {connection === 'connecting' && (
        <Chip icon={<SyncIcon aria-hidden />} label="Connecting…" size="small" sx={{ bgcolor: 'rgba(0,0,0,0.35)', color: '#fff', '& .MuiChip-icon': { color: '#fff' } }} />
      )}
    </Box>
  )
}

/** App bar, conversations (permanent, or a drawer on narrow screens) and the routed screen. */
export function MainLayout({ onSignedOut }: { onSignedOut: (message: string) => void }) {
  const theme = useTheme()
  const narrow = useMediaQuery(theme.breakpoints.down('md'), { noSsr: true })
  const [drawerOpen, setDrawerOpen] = useState(false)
  const location = useLocation()

  // A choice in the drawer closes it; a notification click with nothing
  // unread opens it (useOpenUnread).
  useEffect(() => setDrawerOpen(wantsConversations(location.state)), [location.pathname, location.state])
  useOpenUnread()

  return (
    <Box sx={{ height: '100dvh', display: 'flex', flexDirection: 'column', bgcolor: 'background.default' }}>
      <AppBar position="static" color="primary" sx={{ bgcolor: theme.palette.mode === 'dark' ? '#1b2230' : 'primary.main', color: '#fff' }}>
        <Toolbar sx={{ gap: 1 }}>
          {narrow && (
            <IconButton edge="start" color="inherit" aria-label="Open conversations" onClick={() => setDrawerOpen(true)}>
              <MenuIcon />
            </IconButton>
          )}
          <Box component={RouterLink} to="/" sx={{ color: 'inherit', textDecoration: 'none', borderRadius: 1 }} aria-label="PrivateLine home">
            <Wordmark as="h1" size={26} inverted={theme.palette.mode === 'light'} />
          </Box>
          <Box sx={{ flex: 1 }} />
          <ConnectionIndicator />
          <ThemeToggle />
          <Tooltip title="Account">
            <IconButton component={RouterLink} to="/account" color="inherit" aria-label="Account" edge="end">
              <AccountCircleIcon />
            </IconButton>
          </Tooltip>
        </Toolbar>
      </AppBar>
      <Box sx={{ flex: 1, display: 'flex', minHeight: 0 }}>
        {narrow ? (
          <Drawer
            open={drawerOpen}
            onClose={() => setDrawerOpen(false)}
            slotProps={{ paper: { sx: { width: 'min(88vw, 360px)' } } }}
          >
            <Sidebar onClose={() => setDrawerOpen(false)} />
          </Drawer>
        ) : (
          <Box sx={{ width: sidebarWidth, flexShrink: 0, borderRight: 1, borderColor: 'divider', bgcolor: 'background.paper', display: 'flex', flexDirection: 'column', minHeight: 0 }}>
            <Sidebar />
          </Box>
        )}
        <Box component="main" sx={{ flex: 1, minWidth: 0, display: 'flex', flexDirection: 'column', minHeight: 0 }}>
          <Outlet />
        </Box>
      </Box>
      <SessionEndedDialog onSignedOut={onSignedOut} />
    </Box>
  )
}
