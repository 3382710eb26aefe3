import {
  Box, Button, Chip, CircularProgress, Divider, Drawer, FormControl, FormHelperText, IconButton, InputLabel, List, ListItem,
  ListItemAvatar, ListItemText, MenuItem, Select, TextField, Typography,
} from '@mui/material'
import CloseIcon from '@mui/icons-material/Close'
import PersonRemoveIcon from '@mui/icons-material/PersonRemoveOutlined'
import VerifiedIcon from '@mui/icons-material/VerifiedUserOutlined'
import LogoutIcon from '@mui/icons-material/Logout'
import { useState, type FormEvent } from 'react'
import { useNavigate } from 'react-router-dom'
import type { Conversation, Role } from '../../engine/types'
import { AddressText } from '../AddressText'
import { NameAvatar } from '../Avatar'
import { useEngine, useEngineState, useNotify } from '../context'
import { errorMessage } from '../errors'
import { timerOptions, timerSeconds, timerValue } from '../format'

const roleLabel: Record<Role, string> = { owner: 'Owner', admin: 'Admin', member: 'Member' }

/** Retention select shared by the conversation details and the account screen. */
export function RetentionSelect({ id, label, value, onChange, helper }: {
  id: string; label: string; value: number | null; onChange: (seconds: number | null) => Promise<void>; helper: string
}) {
  const notify = useNotify()
  const [busy, setBusy] = useState(false)
  async function change(v: string) {
    setBusy(true)
    try {
      await onChange(timerSeconds(v))
    } catch (err) {
      notify(errorMessage(err))
    } finally {
      setBusy(false)
    }
  }
  const known = timerOptions.some((o) => timerValue(o.seconds) === timerValue(value))
  return (
    <FormControl fullWidth disabled={busy}>
      <InputLabel id={`${id}-label`}>{label}</InputLabel>
      <Select
        labelId={`${id}-label`}
        label={label}
        value={timerValue(value)}
        onChange={(e) => void change(e.target.value)}
        endAdornment={busy ? <CircularProgress size={18} aria-label="Saving" sx={{ mr: 4 }} /> : undefined}
        aria-describedby={`${id}-help`}
      >
        {timerOptions.map((o) => (
          <MenuItem key={o.label} value={timerValue(o.seconds)}>{o.label}</MenuItem>
        ))}
        {!known && value !== null && <MenuItem value={timerValue(value)}>{value} seconds</MenuItem>}
      </Select>
      <FormHelperText id={`${id}-help`}>{helper}</FormHelperText>
    </FormControl>
  )
}

function Members({ c }: { c: Conversation }) {
  const engine = useEngine()
  const { me, contacts } = useEngineState()
  const notify = useNotify()
  const navigate = useNavigate()
  const [adding, setAdding] = useState('')
  const [busy, setBusy] = useState<string | null>(null)
  const admin = c.myRole === 'owner' || c.myRole === 'admin'

  async function run(key: string, f: () => Promise<void>, done?: string) {
    setBusy(key)
    try {
      await f()
      if (done) notify(done, 'success')
    } catch (err) {
      notify(errorMessage(err))
    } finally {
      setBusy(null)
    }
  }

  function add(e: FormEvent) {
    e.preventDefault()
    const a = adding.trim().toLowerCase()
    if (a === '') {
      notify('Enter the address of the person to add.')
      return
    }
    void run('add', async () => {
      await engine.addMember(c.id, a)
      setAdding('')
    }, `${a} was added.`)
  }

  return (
    <Box>
      <Typography component="h3" variant="h3" sx={{ mb: 1 }}>
        Members ({c.members.length})
      </Typography>
      <List dense disablePadding aria-label="Members">
        {c.members.map((m) => {
          const removable = admin && m.address !== me && m.role !== 'owner'
          return (
            <ListItem
              key={m.address}
              disableGutters
              secondaryAction={removable ? (
                <IconButton aria-label={`Remove ${m.address}`} disabled={busy !== null} onClick={() => run(`rm:${m.address}`, () => engine.removeMember(c.id, m.address), `${m.address} was removed.`)}>
                  {busy === `rm:${m.address}` ? <CircularProgress size={18} aria-hidden /> : <PersonRemoveIcon />}
                </IconButton>
              ) : undefined}
            >
              <ListItemAvatar sx={{ minWidth: 44 }}>
                <NameAvatar name={m.address} size={32} />
              </ListItemAvatar>
              <ListItemText
                primary={
                  <Box component="span" sx={{ display: 'flex', minWidth: 0 }}>
                    <AddressText text={m.address} />
                    {m.address === me && <Box component="span" sx={{ flexShrink: 0, whiteSpace: 'pre' }}> (you)</Box>}
                  </Box>
                }
                secondary={
                  <>
                    {roleLabel[m.role]}
                    {contacts[m.address]?.trust === 'verified' && ' · Verified'}
                    {contacts[m.address]?.trust === 'changed' && ' · Key changed'}
                  </>
                }
                slotProps={{ primary: { component: 'div' } }}
              />
            </ListItem>
          )
        })}
      </List>
      {admin && (
        <Box component="form" onSubmit={add} sx={{ display: 'flex', gap: 1, mt: 1.5, alignItems: 'flex-start' }}>
          <TextField
            label="Add member"
            placeholder="dave@example.org"
            size="small"
            value={adding}
            onChange={(e) => setAdding(e.target.value)}
            disabled={busy !== null}
            fullWidth
            slotProps={{ htmlInput: { autoCapitalize: 'none', spellCheck: false } }}
          />
          <Button type="submit" variant="contained" disabled={busy !== null} startIcon={busy === 'add' ? <CircularProgress size={16} color="inherit" aria-hidden /> : undefined}>
            Add
          </Button>
        </Box>
      )}
      <Divider sx={{ my: 2 }} />
      <Button
        color="error"
        variant="outlined"
        startIcon={busy === 'leave' ? <CircularProgress size={16} color="inherit" aria-hidden /> : <LogoutIcon />}
        disabled={busy !== null}
        onClick={() => run('leave', async () => {
          await engine.leaveGroup(c.id)
          navigate('/', { replace: true })
        }, `You left ${c.title}.`)}
      >
        Leave group
      </Button>
    </Box>
  )
}

export function DetailsDrawer({ c, open, onClose, onVerify }: { c: Conversation; open: boolean; onClose: () => void; onVerify: () => void }) {
  const engine = useEngine()
  const contact = useEngineState().contacts[c.peer ?? '']
  return (
    <Drawer anchor="right" open={open} onClose={onClose} slotProps={{ paper: { sx: { width: 'min(100vw, 380px)' }, role: 'dialog', 'aria-modal': true, 'aria-labelledby': 'details-title' } as object }}>
      <Box sx={{ display: 'flex', alignItems: 'center', px: 2, py: 1.5, borderBottom: 1, borderColor: 'divider' }}>
        <Typography id="details-title" component="h2" variant="h2" sx={{ flex: 1 }}>
          Conversation details
        </Typography>
        <IconButton aria-label="Close details" onClick={onClose}>
          <CloseIcon />
        </IconButton>
      </Box>
      <Box sx={{ p: 2.5, display: 'flex', flexDirection: 'column', gap: 3 }}>
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 1.5 }}>
          <NameAvatar name={c.title} group={c.kind === 'group'} size={48} />
          <Box sx={{ minWidth: 0 }}>
            <Typography sx={{ fontWeight: 600 }} noWrap>{c.title}</Typography>
            <Typography variant="body2" color="text.secondary">
              {c.kind === 'group' ? `Group · ${c.members.length} members` : 'Direct conversation'}
            </Typography>
          </Box>
        </Box>
        <RetentionSelect
          id="retention"
          label="Messages disappear after"
          value={c.retentionSeconds}
          onChange={(s) => engine.setRetention(c.id, s)}
          helper="For everyone in this conversation, on messages sent from now on."
        />
        {c.kind === 'direct' && c.peer && (
          <Box>
            <Typography component="h3" variant="h3" sx={{ mb: 1 }}>Safety</Typography>
            <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, mb: 1.5 }}>
              {contact?.trust === 'verified' ? <Chip color="success" size="small" label="Verified" /> : contact?.trust === 'changed' ? <Chip color="warning" size="small" label="Key changed" /> : <Chip size="small" variant="outlined" label="Not verified" />}
            </Box>
            <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
              Compare safety numbers with {c.peer} to make sure nobody is in the middle.
            </Typography>
            <Button variant="outlined" startIcon={<VerifiedIcon />} onClick={onVerify}>
              Verify
            </Button>
          </Box>
        )}
        {c.kind === 'group' && <Members c={c} />}
      </Box>
    </Drawer>
  )
}
