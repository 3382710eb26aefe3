import { Box, Button, CircularProgress, IconButton, Tooltip, Typography, useTheme } from '@mui/material'
import DoneIcon from '@mui/icons-material/Done'
import DoneAllIcon from '@mui/icons-material/DoneAll'
import ScheduleIcon from '@mui/icons-material/Schedule'
import ErrorIcon from '@mui/icons-material/ErrorOutline'
import HourglassIcon from '@mui/icons-material/HourglassBottom'
import DeleteIcon from '@mui/icons-material/DeleteOutline'
import CloudOffIcon from '@mui/icons-material/CloudOffOutlined'
import { memo, useState } from 'react'
import type { ChatMessage, MessageStatus } from '../../engine/types'
import { useEngine, useNotify } from '../context'
import { errorMessage } from '../errors'
import { clockTime, localPart, shortDuration } from '../format'
import { bubbleColors } from '../theme'
import { Attachments } from './Attachments'

const statusLabel: Record<MessageStatus, string> = {
  queued: 'Queued', sending: 'Sending', sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Failed', waiting: 'Waiting',
}

function StatusMark({ status, readBy, waitingFor }: { status: MessageStatus; readBy: string[]; waitingFor?: string[] }) {
  const icon = {
    queued: <ScheduleIcon sx={{ fontSize: 16 }} />,
    sending: <CircularProgress aria-hidden size={11} thickness={6} color="inherit" sx={{ mx: "2.5px" }} />,
    sent: <DoneIcon sx={{ fontSize: 16 }} />,
    delivered: <DoneAllIcon sx={{ fontSize: 16 }} />,
    read: <DoneAllIcon sx={{ fontSize: 16, color: '#7fe3ff' }} />,
    failed: <ErrorIcon sx={{ fontSize: 16, color: '#ffb4ab' }} />,
    waiting: <CloudOffIcon sx={{ fontSize: 16 }} />,
  }[status]
  const label = status === 'waiting' && waitingFor?.length ? `Waiting for ${waitingFor.join(', ')}` : statusLabel[status]
  const tip = status === 'read' && readBy.length ? `Read by ${readBy.join(', ')}`
    : status === 'waiting' ? `${label}: sent, but that server cannot be reached right now. It will be delivered when it is back.`
    : label
  return (
    <Tooltip title={tip} describeChild>
      <Box component="span" role="img" aria-label={label} sx={{ display: 'inline-flex', alignItems: 'center', '& > *': { pointerEvents: 'none' } }}>
        {icon}
      </Box>
    </Tooltip>
  )
}

export interface BubbleProps {
  m: ChatMessage
  showSender: boolean
  /** first of a run from the same sender: a little more space above */
  firstOfRun: boolean
  animate: boolean
  now: number
}

export const MessageBubble = memo(function MessageBubble({ m, showSender, firstOfRun, animate, now }: BubbleProps) {
  const theme = useTheme()
  const engine = useEngine()
  const notify = useNotify()
  const [busy, setBusy] = useState<'retry' | 'delete' | null>(null)
  const colors = bubbleColors(theme, m.outgoing)
  const failed = m.status === 'failed'

  async function run(kind: 'retry' | 'delete', f: () => Promise<void>) {
    setBusy(kind)
    try {
      await f()
    } catch (err) {
      notify(errorMessage(err))
    } finally {
      setBusy(null)
    }
  }

  return (
    <Box
      role="article"
      aria-label={`${m.outgoing ? 'You' : m.sender}, ${clockTime(m.sentAt)}`}
      className={animate ? 'pl-arrive' : undefined}
      sx={{
        display: 'flex', flexDirection: 'column', alignItems: m.outgoing ? 'flex-end' : 'flex-start',
        mt: firstOfRun ? 1.25 : 0.25, px: { xs: 1.5, sm: 3 },
        '&:hover .pl-actions, &:focus-within .pl-actions': { opacity: 1 },
      }}
    >
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 0.5, flexDirection: m.outgoing ? 'row' : 'row-reverse', maxWidth: { xs: '88%', sm: '72%' } }}>
        <Box className="pl-actions" sx={{ opacity: 0, transition: 'opacity 120ms', '@media (hover: none)': { opacity: 1 } }}>
          <Tooltip title="Delete message">
            <IconButton size="small" aria-label="Delete message" onClick={() => run('delete', () => engine.deleteMessage(m.id))} disabled={busy !== null}>
              <DeleteIcon fontSize="small" />
            </IconButton>
          </Tooltip>
        </Box>
        <Box
          sx={{
            bgcolor: colors.bg, color: colors.fg, px: 1.5, py: 0.75, borderRadius: 2.5, minWidth: 64,
            borderBottomRightRadius: m.outgoing && firstOfRun ? 6 : undefined,
            borderBottomLeftRadius: !m.outgoing && firstOfRun ? 6 : undefined,
            boxShadow: theme.palette.mode === 'light' && !m.outgoing ? '0 1px 2px rgba(20,30,60,0.12)' : 'none',
            outline: failed ? `2px solid ${theme.palette.error.main}` : 'none',
            overflowWrap: 'anywhere',
          }}
        >
          {showSender && (
            <Typography variant="caption" component="div" sx={{ fontWeight: 700, color: theme.palette.mode === 'dark' ? '#9cc0ff' : '#1f3fae' }}>
              {localPart(m.sender)}
              <Box component="span" sx={{ fontWeight: 400, color: colors.meta }}> {m.sender.slice(localPart(m.sender).length)}</Box>
            </Typography>
          )}
          {m.attachments.length > 0 && <Attachments messageId={m.id} list={m.attachments} />}
          {m.text !== '' && (
            <Typography component="div" sx={{ whiteSpace: 'pre-wrap', lineHeight: 1.45 }}>
              {m.text}
            </Typography>
          )}
          <Box sx={{ display: 'flex', alignItems: 'center', justifyContent: 'flex-end', gap: 0.5, mt: 0.25, color: colors.meta, fontSize: 12 }}>
            {m.expiresAt !== undefined && (
              <Box component="span" role="img" aria-label={`Disappears in ${shortDuration(m.expiresAt - now)}`} sx={{ display: 'inline-flex', alignItems: 'center', gap: 0.25 }}>
                <HourglassIcon sx={{ fontSize: 14 }} />
                <span aria-hidden>{shortDuration(m.expiresAt - now)}</span>
              </Box>
            )}
            <Box component="time" dateTime={new Date(m.sentAt).toISOString()}>{clockTime(m.sentAt)}</Box>
            {m.outgoing && <StatusMark status={m.status} readBy={m.readBy} waitingFor={m.waitingFor} />}
          </Box>
        </Box>
      </Box>
      {(failed || (m.error && !m.outgoing)) && (
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, mt: 0.5, maxWidth: { xs: '88%', sm: '72%' } }}>
          <Typography variant="body2" color="error">{m.error ?? 'This message could not be sent.'}</Typography>
          {failed && m.outgoing && (
            <Button size="small" variant="outlined" color="error" onClick={() => run('retry', () => engine.retry(m.id))} disabled={busy !== null}>
              Retry
            </Button>
          )}
        </Box>
      )}
    </Box>
  )
})
