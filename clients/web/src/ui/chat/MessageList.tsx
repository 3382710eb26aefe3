import { Box, Button, CircularProgress, Typography } from '@mui/material'
import ArrowDownwardIcon from '@mui/icons-material/ArrowDownward'
import LockIcon from '@mui/icons-material/LockOutlined'
import { Fragment, useEffect, useLayoutEffect, useRef, useState } from 'react'
import type { ChatMessage } from '../../engine/types'
import { dayKey, dayLabel } from '../format'
import { MessageBubble } from './MessageBubble'

const nearBottom = 80

/** Ticks every second while some message counts down to its disappearance. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    if (!active) return
    setNow(Date.now())
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [active])
  return now
}

export function MessageList({ messages, group, loading }: { messages: ChatMessage[]; group: boolean; loading: boolean }) {
  const scroller = useRef<HTMLDivElement>(null)
  const atBottom = useRef(true)
  const [unseen, setUnseen] = useState(0)
  // Messages on screen at the first render (history) do not animate; later ones do.
  const initial = useRef<Set<string> | null>(null)
  if (initial.current === null && !loading) initial.current = new Set(messages.map((m) => m.id))
  const lastId = messages.at(-1)?.id
  const seenLast = useRef<string | undefined>(undefined)
  const now = useNow(messages.some((m) => m.expiresAt !== undefined))

  const toBottom = (smooth: boolean) => {
    const el = scroller.current
    if (!el) return
    const reduce = typeof window.matchMedia === 'function' && window.matchMedia('(prefers-reduced-motion: reduce)').matches
    if (typeof el.scrollTo === 'function') el.scrollTo({ top: el.scrollHeight, behavior: smooth && !reduce ? 'smooth' : 'auto' })
    else el.scrollTop = el.scrollHeight
    atBottom.current = true
    setUnseen(0)
  }

  useLayoutEffect(() => {
    if (lastId === seenLast.current) return
    const first = seenLast.current === undefined
    seenLast.current = lastId
    const last = messages.at(-1)
    if (first || atBottom.current || last?.outgoing) toBottom(!first)
    else setUnseen((n) => n + 1)
  }, [lastId])

  // Images decrypt after the first layout: stay at the bottom while the content grows, if we were there.
  const content = useRef<HTMLDivElement>(null)
  useEffect(() => {
    if (typeof ResizeObserver === 'undefined' || !content.current) return
    const ro = new ResizeObserver(() => {
      const el = scroller.current
      if (el && atBottom.current) el.scrollTop = el.scrollHeight
    })
    ro.observe(content.current)
    return () => ro.disconnect()
  }, [])

  function onScroll() {
    const el = scroller.current!
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < nearBottom
    if (atBottom.current) setUnseen(0)
  }

  return (
    <Box sx={{ position: 'relative', flex: 1, minHeight: 0, display: 'flex' }}>
      <Box
        ref={scroller}
        role="log"
        aria-label="Messages"
        aria-live="polite"
        tabIndex={0}
        onScroll={onScroll}
        sx={{
          flex: 1, overflowY: 'auto', py: 2, outline: 'none',
          '&:focus-visible': { boxShadow: (t) => `inset 0 0 0 2px ${t.palette.primary.main}` },
          '@keyframes pl-arrive': {
            from: { opacity: 0, transform: 'translateY(10px) scale(0.98)' },
            to: { opacity: 1, transform: 'none' },
          },
          '& .pl-arrive': { animation: 'pl-arrive 220ms cubic-bezier(0.2, 0.8, 0.2, 1)' },
          '@media (prefers-reduced-motion: reduce)': { '& .pl-arrive': { animation: 'none' } },
        }}
      >
        <Box ref={content}>
        {loading && messages.length === 0 && (
          <Box sx={{ display: 'grid', placeItems: 'center', py: 6 }}>
            <CircularProgress aria-label="Loading messages" />
          </Box>
        )}
        {!loading && messages.length === 0 && (
          <Box sx={{ display: 'flex', flexDirection: 'column', alignItems: 'center', gap: 1, py: 8, px: 3, color: 'text.secondary', textAlign: 'center' }}>
            <LockIcon aria-hidden />
            <Typography>No messages yet. What you write here is end-to-end encrypted.</Typography>
          </Box>
        )}
        {messages.map((m, i) => {
          const prev = messages[i - 1]
          const newDay = !prev || dayKey(prev.sentAt) !== dayKey(m.sentAt)
          const firstOfRun = newDay || !prev || prev.sender !== m.sender
          return (
            <Fragment key={m.id}>
              {newDay && (
                <Box role="separator" aria-label={dayLabel(m.sentAt, now)} sx={{ display: 'flex', justifyContent: 'center', my: 1.5 }}>
                  <Typography variant="caption" aria-hidden sx={{ px: 1.5, py: 0.5, borderRadius: 4, bgcolor: 'action.selected', color: 'text.primary', fontWeight: 600 }}>
                    {dayLabel(m.sentAt, now)}
                  </Typography>
                </Box>
              )}
              <MessageBubble
                m={m}
                showSender={group && !m.outgoing && firstOfRun}
                firstOfRun={firstOfRun}
                animate={initial.current !== null && !initial.current.has(m.id)}
                now={m.expiresAt !== undefined ? now : 0}
              />
            </Fragment>
          )
        })}
        </Box>
      </Box>
      {unseen > 0 && (
        <Button
          variant="contained"
          size="small"
          onClick={() => toBottom(true)}
          startIcon={<ArrowDownwardIcon />}
          sx={{ position: 'absolute', bottom: 12, left: '50%', transform: 'translateX(-50%)', borderRadius: 5, boxShadow: 3 }}
        >
          {unseen === 1 ? '1 new message' : `${unseen} new messages`}
        </Button>
      )}
    </Box>
  )
}
