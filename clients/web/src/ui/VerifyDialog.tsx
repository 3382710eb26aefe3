import {
  Alert, Box, Button, Chip, CircularProgress, Dialog, DialogActions, DialogContent, DialogTitle, Typography,
} from '@mui/material'
import VerifiedIcon from '@mui/icons-material/VerifiedUser'
import CameraIcon from '@mui/icons-material/PhotoCameraOutlined'
import ImageIcon from '@mui/icons-material/ImageOutlined'
import { QRCodeSVG } from 'qrcode.react'
import { useCallback, useEffect, useRef, useState } from 'react'
import type { DirectoryWitnessing, SafetyInfo } from '../engine/types'
import { useEngine, useEngineState } from './context'
import { errorMessage } from './errors'
import { FileButton } from './FileButton'
import { cameraErrorMessage, decodeQrImage, videoFrameDecoder } from './qrScan'

/** Live camera preview that calls onCode with the first QR text it sees; stops the camera when unmounted. */
export function CameraScanner({ onCode, onError }: { onCode: (text: string) => void; onError: (message: string) => void }) {
  const video = useRef<HTMLVideoElement>(null)
  const [starting, setStarting] = useState(true)
  const done = useRef(false)

  useEffect(() => {
    let stream: MediaStream | null = null
    let decodeVideoFrame: ((video: HTMLVideoElement) => string | null) | undefined
    let frame = 0
    let stopped = false
    const stop = () => {
      stopped = true
      cancelAnimationFrame(frame)
      stream?.getTracks().forEach((t) => t.stop())
    }
    const tick = () => {
      if (stopped || !video.current || !decodeVideoFrame) return
      try {
        const text = decodeVideoFrame(video.current)
        if (text !== null && !done.current) {
          done.current = true
          stop()
          onCode(text)
          return
        }
      } catch (err) {
        stop()
        onError(errorMessage(err))
        return
      }
      frame = requestAnimationFrame(tick)
    }
    ;(async () => {
      if (!navigator.mediaDevices?.getUserMedia) throw new DOMException('no camera API', 'NotFoundError')
      try {
        decodeVideoFrame = await videoFrameDecoder()
      } catch (err) {
        if (!stopped) onError(errorMessage(err))
        return
      }
      if (stopped) return
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false })
      if (stopped) {
        stream.getTracks().forEach((t) => t.stop())
        return
      }
      const v = video.current!
      v.srcObject = stream
      await v.play()
      setStarting(false)
      frame = requestAnimationFrame(tick)
    })().catch((err) => {
      if (!stopped) onError(cameraErrorMessage(err))
    })
    return stop
  }, [onCode, onError])

  return (
    <Box sx={{ position: 'relative', width: '100%', maxWidth: 320, aspectRatio: '1', mx: 'auto', borderRadius: 2, overflow: 'hidden', bgcolor: '#000' }}>
      <video ref={video} muted playsInline aria-label="Camera preview" style={{ width: '100%', height: '100%', objectFit: 'cover' }} />
      {starting && (
        <Box sx={{ position: 'absolute', inset: 0, display: 'grid', placeItems: 'center', color: '#fff' }}>
          <CircularProgress color="inherit" aria-label="Starting the camera" />
        </Box>
      )}
      <Box aria-hidden sx={{ position: 'absolute', inset: '15%', border: '3px solid rgba(255,255,255,0.8)', borderRadius: 2 }} />
    </Box>
  )
}

/** Safety number, QR code and the ways to confirm them for one contact. */
export function VerifyDialog({ address, open, onClose }: { address: string; open: boolean; onClose: () => void }) {
  const engine = useEngine()
  const contact = useEngineState().contacts[address]
  const [info, setInfo] = useState<SafetyInfo | null>(null)
  const [loadError, setLoadError] = useState<string | null>(null)
  const [busy, setBusy] = useState<'mark' | 'accept' | 'scan' | null>(null)
  const [result, setResult] = useState<{ severity: 'success' | 'error' | 'info'; text: string } | null>(null)
  const [camera, setCamera] = useState(false)
  const trust = contact?.trust ?? info?.trust

  const load = useCallback(() => {
    setLoadError(null)
    setInfo(null)
    engine.safety(address).then(setInfo, (err) => setLoadError(errorMessage(err)))
  }, [engine, address])

  useEffect(() => {
    if (!open) return
    setResult(null)
    setCamera(false)
    load()
  }, [open, load])

  // A key change or a verification elsewhere changes the number: fetch it again.
  const trustSeen = useRef(trust)
  useEffect(() => {
    if (open && trustSeen.current === 'changed' && trust !== 'changed') load()
    trustSeen.current = trust
  }, [trust, open, load])

  async function act(kind: 'mark' | 'accept', f: () => Promise<void>, done: string) {
    setBusy(kind)
    setResult(null)
    try {
      await f()
      setResult({ severity: 'success', text: done })
    } catch (err) {
      setResult({ severity: 'error', text: errorMessage(err) })
    } finally {
      setBusy(null)
    }
  }

  const scanned = useCallback(
    async (payload: string) => {
      setCamera(false)
      setBusy('scan')
      setResult(null)
      try {
        const who = await engine.verifyScanned(payload)
        setResult(who === address
          ? { severity: 'success', text: `The codes match: ${who} verified.` }
          : { severity: 'info', text: `That code is ${who}’s, not ${address}’s: ${who} verified.` })
      } catch (err) {
        setResult({ severity: 'error', text: errorMessage(err) })
      } finally {
        setBusy(null)
      }
    },
    [engine, address],
  )
  const cameraFailed = useCallback((message: string) => {
    setCamera(false)
    setResult({ severity: 'error', text: message })
  }, [])

  async function scanFile(files: File[]) {
    setBusy('scan')
    setResult(null)
    try {
      const payload = await decodeQrImage(files[0])
      await scanned(payload)
    } catch (err) {
      setResult({ severity: 'error', text: errorMessage(err) })
      setBusy(null)
    }
  }

  const groups = info?.safetyNumber.split(/\s+/) ?? []

  return (
    <Dialog open={open} onClose={onClose} aria-labelledby="verify-title" fullWidth maxWidth="sm" scroll="body">
      <DialogTitle id="verify-title" sx={{ overflowWrap: 'anywhere' }}>Verify {address}</DialogTitle>
      <DialogContent>
        <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, mb: 2 }}>
          {trust === 'verified' ? (
            <Chip color="success" icon={<VerifiedIcon />} label="Verified" />
          ) : trust === 'changed' ? (
            <Chip color="warning" label="Key changed" />
          ) : (
            <Chip label="Not verified" variant="outlined" />
          )}
        </Box>
        <Typography color="text.secondary" sx={{ mb: 2, overflowWrap: 'anywhere' }}>
          Compare these numbers with {address} in person or on a call, or scan each other’s code. If they match, nobody is
          in the middle of your conversation.
        </Typography>
        {loadError && (
          <Alert severity="error" action={<Button color="inherit" onClick={load}>Try again</Button>} sx={{ mb: 2 }}>
            {loadError}
          </Alert>
        )}
        {!info && !loadError && (
          <Box sx={{ display: 'grid', placeItems: 'center', py: 6 }}>
            <CircularProgress aria-label="Loading the safety number" />
          </Box>
        )}
        {info && (
          <Box sx={{ display: 'flex', flexDirection: 'column', gap: 2.5, alignItems: 'center' }}>
            <Box
              role="img"
              aria-label="Your safety code"
              sx={{ bgcolor: '#fff', p: 0, borderRadius: 2, overflow: 'hidden', lineHeight: 0, flexShrink: 0, border: 1, borderColor: (t) => (t.palette.mode === 'light' ? 'divider' : 'transparent') }}
            >
              <QRCodeSVG value={info.qrPayload} size={248} marginSize={4} level="M" bgColor="#ffffff" fgColor="#000000" aria-hidden />
            </Box>
            <Box
              data-testid="safety-number"
              aria-label={`Safety number: ${info.safetyNumber}`}
              role="group"
              sx={{ display: 'grid', gridTemplateColumns: { xs: 'repeat(3, auto)', sm: 'repeat(4, auto)' }, gap: '6px 18px', fontFamily: 'ui-monospace, "SF Mono", Menlo, Consolas, monospace', fontSize: { xs: '1.05rem', sm: '1.2rem' }, letterSpacing: '0.05em' }}
            >
              {groups.map((g, i) => (
                <span key={i}>{g}{i < groups.length - 1 ? ' ' : ''}</span>
              ))}
            </Box>
          </Box>
        )}
        {camera && (
          <Box sx={{ mt: 3 }}>
            <CameraScanner onCode={scanned} onError={cameraFailed} />
            <Box sx={{ textAlign: 'center', mt: 1 }}>
              <Button onClick={() => setCamera(false)}>Stop camera</Button>
            </Box>
          </Box>
        )}
        {info?.directory && <DirectoryWitnesses info={info.directory} />}
        {result && (
          <Alert severity={result.severity} sx={{ mt: 2 }}>
            {result.text}
          </Alert>
        )}
        <Box sx={{ display: 'flex', gap: 1, flexWrap: 'wrap', mt: 3 }}>
          <FileButton inputLabel="Scan QR image" accept="image/*" onFiles={scanFile} variant="outlined" startIcon={<ImageIcon />} disabled={busy !== null}>
            Scan from image
          </FileButton>
          <Button variant="outlined" startIcon={<CameraIcon />} onClick={() => { setResult(null); setCamera(true) }} disabled={busy !== null || camera}>
            Scan with camera
          </Button>
          {busy === 'scan' && <CircularProgress size={24} aria-label="Checking the code" />}
        </Box>
      </DialogContent>
      <DialogActions sx={{ px: 3, pb: 2, flexWrap: 'wrap', gap: 1 }}>
        {trust === 'changed' && (
          <Button onClick={() => act('accept', () => engine.acceptKeyChange(address), `The new key of ${address} is accepted, not verified.`)} disabled={busy !== null}>
            Accept without verifying
          </Button>
        )}
        <Button onClick={onClose}>Close</Button>
        <Button
          variant="contained"
          onClick={() => act('mark', () => engine.markVerified(address), `${address} is verified.`)}
          disabled={busy !== null || !info || trust === 'verified'}
          startIcon={busy === 'mark' ? <CircularProgress size={16} color="inherit" aria-hidden /> : <VerifiedIcon />}
        >
          Mark as verified
        </Button>
      </DialogActions>
    </Dialog>
  )
}

/**
 * How many other servers vouch for the homeserver's key directory, and a
 * warning for each directory the homeserver caught forking
 * (spec/e2ee.md §6.4 "Witnesses").
 */
function DirectoryWitnesses({ info }: { info: DirectoryWitnessing }) {
  const n = info.vouchedBy.length
  return (
    <Box sx={{ mt: 2.5 }}>
      {info.forks.map((f) => (
        <Alert key={f.server} severity="warning" sx={{ mb: 1.5 }}>
          Your server reports that the key directory of {f.server} forked: it showed two different histories of its keys.
          {f.verified ? (f.reason ? ` The evidence checks out: ${f.reason}` : ' The evidence checks out.') : ' This app could not check the evidence yet.'} Do not trust new keys from{' '}
          {f.server} until this is explained.
        </Alert>
      ))}
      <Typography variant="body2" color="text.secondary">
        {info.error
          ? `Could not check which servers vouch for your server’s key directory: ${info.error}`
          : n === 0
            ? 'No other server vouches for your server’s key directory yet.'
            : `${n} other ${n === 1 ? 'server vouches' : 'servers vouch'} for your server’s key directory: ${info.vouchedBy.join(', ')}.`}
      </Typography>
    </Box>
  )
}
