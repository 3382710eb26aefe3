import { Box, LinearProgress, List, ListItem, ListItemIcon, ListItemText } from '@mui/material'
import CheckCircleIcon from '@mui/icons-material/CheckCircle'
import RadioButtonUncheckedIcon from '@mui/icons-material/RadioButtonUnchecked'
import { CircularProgress } from '@mui/material'
import type { Progress } from '../engine/types'

export const progressText: Record<Progress, string> = {
  deriving: 'Deriving keys from your password',
  generating: 'Generating your encryption keys',
  registering: 'Creating your account',
  logging_in: 'Signing in',
  unwrapping: 'Unlocking your keys',
  loading: 'Loading your conversations',
}

/** The steps done, under way and to come, with a bar for the whole. */
export function ProgressSteps({ steps, current, label }: { steps: Progress[]; current: Progress; label: string }) {
  const at = Math.max(0, steps.indexOf(current))
  return (
    <Box sx={{ mt: 1 }}>
      <LinearProgress
        variant="determinate"
        value={((at + 0.5) / steps.length) * 100}
        aria-label={label}
        aria-valuetext={progressText[current]}
        sx={{ height: 6, borderRadius: 3 }}
      />
      <List dense aria-label="Steps" sx={{ mt: 1 }}>
        {steps.map((s, i) => (
          <ListItem key={s} disableGutters sx={{ py: 0 }}>
            <ListItemIcon sx={{ minWidth: 32 }}>
              {i < at ? (
                <CheckCircleIcon fontSize="small" color="success" aria-hidden />
              ) : i === at ? (
                <CircularProgress size={16} aria-hidden sx={{ ml: '2px' }} />
              ) : (
                <RadioButtonUncheckedIcon fontSize="small" color="disabled" aria-hidden />
              )}
            </ListItemIcon>
            <ListItemText
              primary={progressText[s] + (i === at ? '…' : '')}
              secondary={i < at ? 'done' : i === at ? 'under way' : undefined}
              slotProps={{ primary: { color: i > at ? 'text.secondary' : 'text.primary', fontWeight: i === at ? 600 : 400 }, secondary: { sx: { position: 'absolute', width: 1, height: 1, overflow: 'hidden', clip: 'rect(0 0 0 0)' } } }}
            />
          </ListItem>
        ))}
      </List>
    </Box>
  )
}
