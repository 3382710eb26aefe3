import { Box, Chip, CircularProgress, IconButton, MenuItem, Select, TextField } from '@mui/material'
import CloseIcon from '@mui/icons-material/Close'
import SendIcon from '@mui/icons-material/Send'
import AttachFileIcon from '@mui/icons-material/AttachFile'
import TimerIcon from '@mui/icons-material/TimerOutlined'
import TimerOffIcon from '@mui/icons-material/TimerOffOutlined'
import { useContext, useEffect, useRef, useState, type KeyboardEvent } from 'react'
import { DraftsContext, useEngine, useNotify } from '../context'
import { errorMessage } from '../errors'
import { fileSize, timerOptions, timerSeconds, timerValue } from '../format'
import { visuallyHidden } from '../VisuallyHidden'

/**
 * The message field (grows up to a limit; Enter sends, Shift+Enter starts a
 * new line), attachments and this message's own disappearing timer. The
 * text is kept as the conversation's draft while the app is open.
 */
export function Composer({ conversationId, disabled, disabledReason }: { conversationId: string; disabled: boolean; disabledReason?: string }) {
  const engine = useEngine()
  const notify = useNotify()
  const drafts = useContext(DraftsContext)
  const [text, setText] = useState(() => drafts.get(conversationId))
  const [files, setFiles] = useState<File[]>([])
  const [timer, setTimer] = useState<string>('off')
  const [sending, setSending] = useState(false)
  const field = useRef<HTMLTextAreaElement>(null)
  const picker = useRef<HTMLInputElement>(null)

  useEffect(() => drafts.set(conversationId, text), [drafts, conversationId, text])

  const canSend = !disabled && !sending && (text.trim() !== '' || files.length > 0)

  async function send() {
    if (!canSend) return
    setSending(true)
    const seconds = timerSeconds(timer)
    try {
      await engine.send(conversationId, text.trim(), {
        files: files.length ? files : undefined,
        expiresInSeconds: seconds ?? undefined,
      })
      setText('')
      setFiles([])
    } catch (err) {
      notify(`Not sent: ${errorMessage(err)}`)
    } finally {
      setSending(false)
      field.current?.focus()
    }
  }

  function onKeyDown(e: KeyboardEvent<HTMLDivElement>) {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault()
      void send()
    }
  }

  return (
    <Box
      component="form"
      aria-label="Write a message"
      onSubmit={(e) => {
        e.preventDefault()
        void send()
      }}
      sx={{ borderTop: 1, borderColor: 'divider', bgcolor: 'background.paper', px: { xs: 1, sm: 2 }, py: 1 }}
    >
      {files.length > 0 && (
        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 1, pb: 1 }}>
          {files.map((f, i) => (
            <Box key={`${f.name}-${i}`} sx={{ display: 'inline-flex', alignItems: 'center', borderRadius: 4, bgcolor: 'action.selected', pl: 0.5 }}>
              <Chip icon={<AttachFileIcon />} label={`${f.name} · ${fileSize(f.size)}`} sx={{ bgcolor: 'transparent', maxWidth: 260 }} />
              <IconButton size="small" aria-label={`Remove ${f.name}`} onClick={() => setFiles((list) => list.filter((_, j) => j !== i))}>
                <CloseIcon fontSize="small" />
              </IconButton>
            </Box>
          ))}
        </Box>
      )}
      <Box sx={{ display: 'flex', alignItems: 'flex-end', gap: 0.5 }}>
        <input
          ref={picker}
          type="file"
          multiple
          aria-label="Attach file"
          tabIndex={-1}
          style={visuallyHidden}
          disabled={disabled}
          onChange={(e) => {
            const chosen = [...(e.target.files ?? [])]
            e.target.value = ''
            if (chosen.length) setFiles((list) => [...list, ...chosen])
          }}
        />
        <IconButton aria-label="Add a file" title="Add a file" onClick={() => picker.current?.click()} disabled={disabled} sx={{ mb: 0.25 }}>
          <AttachFileIcon />
        </IconButton>
        <Select
          value={timer}
          onChange={(e) => setTimer(e.target.value)}
          size="small"
          variant="standard"
          disableUnderline
          disabled={disabled}
          inputProps={{ 'aria-label': 'Disappearing timer' }}
          renderValue={(v) => (
            <Box sx={{ display: 'flex', alignItems: 'center', gap: 0.5, color: v === 'off' ? 'text.secondary' : 'primary.main' }}>
              {v === 'off' ? <TimerOffIcon fontSize="small" /> : <TimerIcon fontSize="small" />}
              <Box component="span" sx={{ display: { xs: v === 'off' ? 'none' : 'inline', sm: 'inline' }, fontSize: 14 }}>
                {timerOptions.find((o) => timerValue(o.seconds) === v)?.label}
              </Box>
            </Box>
          )}
          sx={{ mb: 1, mx: 0.5, '& .MuiSelect-select': { py: 0.5, display: 'flex' } }}
        >
          {timerOptions.map((o) => (
            <MenuItem key={o.label} value={timerValue(o.seconds)}>
              {o.label}
            </MenuItem>
          ))}
        </Select>
        <TextField
          inputRef={field}
          value={text}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKeyDown}
          placeholder={disabled ? disabledReason ?? 'Sending is blocked' : 'Write a message'}
          disabled={disabled}
          multiline
          maxRows={8}
          fullWidth
          size="small"
          slotProps={{ htmlInput: { 'aria-label': 'Message' } }}
          sx={{ '& .MuiOutlinedInput-root': { borderRadius: 5, bgcolor: 'background.default' } }}
        />
        <IconButton type="submit" aria-label="Send" title="Send (Enter)" color="primary" disabled={!canSend} sx={{ mb: 0.25 }}>
          {sending ? <CircularProgress size={22} aria-hidden /> : <SendIcon />}
        </IconButton>
      </Box>
    </Box>
  )
}
