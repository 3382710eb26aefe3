import { Badge, Box, Button, IconButton, List, ListItemAvatar, ListItemButton, Typography } from '@mui/material'
import AddCommentIcon from '@mui/icons-material/AddCommentOutlined'
import GroupAddIcon from '@mui/icons-material/GroupAddOutlined'
import CloseIcon from '@mui/icons-material/Close'
import DoneIcon from '@mui/icons-material/Done'
import { useState } from 'react'
import { Link as RouterLink, useMatch } from 'react-router-dom'
import type { Conversation } from '../engine/types'
import { useEngineState } from './context'
import { conversationPath, listTime, localPart } from './format'
import { AddressText } from './AddressText'
import { NameAvatar } from './Avatar'
import { NewChatDialog, NewGroupDialog } from './NewConversationDialogs'

function preview(c: Conversation, me: string): string {
  const m = c.lastMessage
  if (!m) return c.kind === 'group' ? `${c.members.length} members` : 'No messages yet'
  const body = m.text.trim() !== '' ? m.text : m.attachments.length ? `📎 ${m.attachments.map((a) => a.name).join(', ')}` : 'Message'
  if (m.outgoing || m.sender === me) return `You: ${body}`
  if (c.kind === 'group') return `${localPart(m.sender)}: ${body}`
  return body
}

function ConversationRow({ c, me, selected }: { c: Conversation; me: string; selected: boolean }) {
  const unread = c.unread > 0
  return (
    <ListItemButton
      component={RouterLink}
      to={conversationPath(c.id)}
      selected={selected}
      aria-current={selected ? 'page' : undefined}
      sx={{ borderRadius: 2, mx: 1, my: 0.25, gap: 0, alignItems: 'center', py: 1 }}
    >
      <ListItemAvatar sx={{ minWidth: 52 }}>
        <NameAvatar name={c.title} group={c.kind === 'group'} />
      </ListItemAvatar>
      <Box sx={{ flex: 1, minWidth: 0 }}>
        <Typography component="span" sx={{ display: 'block', fontWeight: unread ? 700 : 500 }}>
          <AddressText text={c.title} address={c.kind === 'direct'} />
        </Typography>
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
          <Typography component="span" variant="body2" noWrap color={unread ? 'text.primary' : 'text.secondary'} sx={{ flex: 1 }}>
            {preview(c, me)}
          </Typography>
          {c.lastMessage && (
            <Typography component="span" variant="caption" color={unread ? 'primary' : 'text.secondary'} sx={{ flexShrink: 0, fontWeight: unread ? 700 : 400 }}>
              {listTime(c.lastMessage.sentAt)}
            </Typography>
          )}
          {unread && (
            <Box
              component="span"
              role="img"
              aria-label={`${c.unread} unread`}
              sx={{ flexShrink: 0, minWidth: 22, height: 22, px: 0.75, borderRadius: 11, bgcolor: 'primary.main', color: 'primary.contrastText', fontSize: 12, fontWeight: 700, display: 'inline-flex', alignItems: 'center', justifyContent: 'center' }}
            >
              {c.unread > 99 ? '99+' : c.unread}
            </Box>
          )}
        </Box>
      </Box>
    </ListItemButton>
  )
}

/** The conversation list with its "New chat" and "New group" actions. */
export function Sidebar({ onClose }: { onClose?: () => void }) {
  const { conversations, me } = useEngineState()
  const match = useMatch('/chat/:id')
  const selectedId = match?.params.id ? match.params.id : undefined
  const [dialog, setDialog] = useState<'chat' | 'group' | null>(null)
  const totalUnread = conversations.reduce((n, c) => n + c.unread, 0)

  return (
    <Box component="nav" aria-label="Conversations" sx={{ display: 'flex', flexDirection: 'column', height: '100%', minHeight: 0 }}>
      <Box sx={{ display: 'flex', alignItems: 'center', px: 2, pt: 2, pb: 1, gap: 1 }}>
        <Typography component="h2" variant="h2" sx={{ flex: 1 }}>
          Chats
          {totalUnread > 0 && (
            <Badge color="primary" badgeContent={totalUnread} sx={{ ml: 2.5, '& .MuiBadge-badge': { position: 'static', transform: 'none' } }} aria-hidden />
          )}
        </Typography>
        {onClose && (
          <IconButton aria-label="Close conversations" onClick={onClose} size="small">
            <CloseIcon />
          </IconButton>
        )}
      </Box>
      <Box sx={{ display: 'flex', gap: 1, px: 2, pb: 1.5 }}>
        <Button variant="contained" startIcon={<AddCommentIcon />} onClick={() => setDialog('chat')} sx={{ flex: 1 }}>
          New chat
        </Button>
        <Button variant="outlined" startIcon={<GroupAddIcon />} onClick={() => setDialog('group')} sx={{ flex: 1 }}>
          New group
        </Button>
      </Box>
      <Box sx={{ flex: 1, overflowY: 'auto', minHeight: 0, pb: 1 }}>
        {conversations.length === 0 ? (
          <Box sx={{ px: 3, py: 4, textAlign: 'center', color: 'text.secondary' }}>
            <DoneIcon aria-hidden sx={{ opacity: 0.5 }} />
            <Typography variant="body2">No conversations yet. Start one with “New chat”.</Typography>
          </Box>
        ) : (
          <List disablePadding aria-label="Conversation list">
            {conversations.map((c) => (
              <li key={c.id} style={{ listStyle: 'none' }}>
                <ConversationRow c={c} me={me} selected={selectedId === c.id} />
              </li>
            ))}
          </List>
        )}
      </Box>
      <NewChatDialog open={dialog === 'chat'} onClose={() => setDialog(null)} />
      <NewGroupDialog open={dialog === 'group'} onClose={() => setDialog(null)} />
    </Box>
  )
}
