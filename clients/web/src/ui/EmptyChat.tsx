import { Box, Typography } from '@mui/material'
import { LogoMark } from './Logo'
import { useEngineState } from './context'

/** What the main area shows when no conversation is selected. */
export function EmptyChat() {
  const { me, conversations } = useEngineState()
  return (
    <Box sx={{ flex: 1, display: 'grid', placeItems: 'center', p: 4, textAlign: 'center' }}>
      <Box sx={{ maxWidth: 380, display: 'flex', flexDirection: 'column', alignItems: 'center', gap: 1.5 }}>
        <Box sx={{ p: 2.5, borderRadius: '50%', bgcolor: 'action.hover', display: 'grid', placeItems: 'center' }}>
          <LogoMark size={56} />
        </Box>
        <Typography component="h2" variant="h5" sx={{ fontWeight: 700 }}>
          No conversation selected
        </Typography>
        <Typography color="text.secondary">
          {conversations.length === 0
            ? 'Start a chat with “New chat”, or make a group with “New group”.'
            : 'Pick a conversation from the list, or start a new one.'}
        </Typography>
        <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
          Signed in as <strong>{me}</strong>
        </Typography>
      </Box>
    </Box>
  )
}
