import { Alert, Box, Button, Chip, Skeleton } from '@mui/material'
import DownloadIcon from '@mui/icons-material/FileDownloadOutlined'
import { useEffect, useState } from 'react'
import type { Attachment } from '../../engine/types'
import { useEngine, useNotify } from '../context'
import { errorMessage } from '../errors'
import { fileSize } from '../format'

/** A failure that trying again does not mend (a file its homeserver no longer has). */
function isFinal(err: unknown): boolean {
  return err instanceof Error && (err as Error & { code?: unknown }).code === 'remote_file'
}

/** An image, decrypted on display; the object URL is revoked when it leaves the screen. */
function ImageAttachment({ messageId, a }: { messageId: string; a: Attachment }) {
  const engine = useEngine()
  const [url, setUrl] = useState<string | null>(null)
  const [error, setError] = useState<{ text: string; final: boolean } | null>(null)
  const [attempt, setAttempt] = useState(0)

  useEffect(() => {
    let live = true
    let made: string | null = null
    setError(null)
    engine.openAttachment(messageId, a.fileId).then(
      (blob) => {
        if (!live) return
        made = URL.createObjectURL(blob)
        setUrl(made)
      },
      (err) => live && setError({ text: errorMessage(err), final: isFinal(err) }),
    )
    return () => {
      live = false
      if (made) URL.revokeObjectURL(made)
    }
  }, [engine, messageId, a.fileId, attempt])

  if (error) {
    return (
      <Alert
        severity={error.final ? 'info' : 'error'}
        sx={{ my: 0.5 }}
        action={error.final ? undefined : <Button color="inherit" size="small" onClick={() => setAttempt((n) => n + 1)}>Retry</Button>}
      >
        {a.name}: {error.text}
      </Alert>
    )
  }
  if (!url) return <Skeleton variant="rounded" width={240} height={160} aria-label={`Opening ${a.name}`} sx={{ my: 0.5 }} />
  return (
    <Box
      component="img"
      src={url}
      alt={a.name}
      sx={{ display: 'block', maxWidth: '100%', width: 'auto', maxHeight: 320, borderRadius: 1.5, my: 0.5 }}
    />
  )
}

/** Any other file: a chip that decrypts and saves it. */
function FileAttachment({ messageId, a }: { messageId: string; a: Attachment }) {
  const engine = useEngine()
  const notify = useNotify()
  const [busy, setBusy] = useState(false)
  async function download() {
    setBusy(true)
    try {
      const blob = await engine.openAttachment(messageId, a.fileId)
      const url = URL.createObjectURL(blob)
      const link = document.createElement('a')
      link.href = url
      link.download = a.name
      document.body.appendChild(link)
      link.click()
      link.remove()
      setTimeout(() => URL.revokeObjectURL(url), 60_000)
    } catch (err) {
      notify(`${a.name} could not be opened: ${errorMessage(err)}`)
    } finally {
      setBusy(false)
    }
  }
  return (
    <Chip
      icon={<DownloadIcon />}
      label={`${a.name} · ${fileSize(a.size)}`}
      onClick={download}
      disabled={busy}
      aria-label={`Download ${a.name} (${fileSize(a.size)})`}
      sx={{ my: 0.5, maxWidth: '100%', bgcolor: 'rgba(127,127,127,0.18)', color: 'inherit', '& .MuiChip-icon': { color: 'inherit' } }}
    />
  )
}

export function Attachments({ messageId, list }: { messageId: string; list: Attachment[] }) {
  return (
    <Box sx={{ display: 'flex', flexDirection: 'column', alignItems: 'flex-start' }}>
      {list.map((a) =>
        a.mime.startsWith('image/')
          ? <ImageAttachment key={a.fileId} messageId={messageId} a={a} />
          : <FileAttachment key={a.fileId} messageId={messageId} a={a} />,
      )}
    </Box>
  )
}
