// Reading a QR code from an image file or a camera, with jsQR over canvas pixels.
// jsQR is large (about a third of the app's JavaScript before it was split),
// so it is a chunk of its own, loaded on the first scan.
type JsQR = typeof import('jsqr').default

let decoder: Promise<JsQR> | undefined

/** jsQR, loaded once; a human error (and another try next time) when its code cannot be fetched. */
function loadDecoder(): Promise<JsQR> {
  decoder ??= import('jsqr').then(
    (m) => m.default,
    () => {
      decoder = undefined
      throw new Error('The QR code reader could not be loaded. Check your connection and try again.')
    },
  )
  return decoder
}

const maxSide = 1600

function decodeCanvas(jsQR: JsQR, source: CanvasImageSource, width: number, height: number): string | null {
  const scale = Math.min(1, maxSide / Math.max(width, height))
  const w = Math.max(1, Math.round(width * scale))
  const h = Math.max(1, Math.round(height * scale))
  const canvas = document.createElement('canvas')
  canvas.width = w
  canvas.height = h
  const ctx = canvas.getContext('2d', { willReadFrequently: true })
  if (!ctx) throw new Error('This browser cannot read images here.')
  ctx.drawImage(source, 0, 0, w, h)
  const img = ctx.getImageData(0, 0, w, h)
  return jsQR(img.data, w, h, { inversionAttempts: 'attemptBoth' })?.data ?? null
}

function loadImage(file: Blob): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file)
    const img = new Image()
    img.onload = () => {
      URL.revokeObjectURL(url)
      resolve(img)
    }
    img.onerror = () => {
      URL.revokeObjectURL(url)
      reject(new Error('That file is not an image this browser can open.'))
    }
    img.src = url
  })
}

/** The text of the QR code in an image file; a human error when there is none. */
export async function decodeQrImage(file: Blob): Promise<string> {
  const [jsQR, img] = await Promise.all([loadDecoder(), loadImage(file)])
  const text = decodeCanvas(jsQR, img, img.naturalWidth, img.naturalHeight)
  if (text === null) throw new Error('No QR code was found in that image. Try a sharper picture with the whole code in it.')
  return text
}

/** Loads the reader, then gives a function that reads one frame of a playing video: the QR text in it, or null. */
export async function videoFrameDecoder(): Promise<(video: HTMLVideoElement) => string | null> {
  const jsQR = await loadDecoder()
  return (video) => {
    if (video.readyState < 2 || video.videoWidth === 0) return null
    return decodeCanvas(jsQR, video, video.videoWidth, video.videoHeight)
  }
}

/** A human sentence for a getUserMedia failure. */
export function cameraErrorMessage(err: unknown): string {
  const name = err instanceof DOMException || err instanceof Error ? err.name : ''
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera access was not allowed. Allow it in the browser’s site settings, or scan an image instead.'
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found on this device. Scan an image of the code instead.'
    case 'NotReadableError':
      return 'The camera is in use by another app. Close it and try again, or scan an image instead.'
    default:
      return 'The camera could not be started. Scan an image of the code instead.'
  }
}
