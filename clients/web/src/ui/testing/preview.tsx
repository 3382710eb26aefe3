// Dev-only entry (src/ui/testing/preview.html): the real App over the fake
// engine, for looking at the screens. Query: ?as=alice (signed in) &route=/chat/… &connection=offline &ended=1
// &long=1 (two conversations with long addresses of other servers)
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from '../../App'
import { FakeAuth, FakeEngine } from './fakeEngine'
import { seedState } from './seed'

const q = new URLSearchParams(location.search)
const as = q.get('as')
const auth = new FakeAuth({ accounts: [{ username: 'alice', password: 'correct horse battery' }], directory: ['bob@example.org', 'carol@example.org', 'erin@example.org', 'dave@other.example'], initialState: (a) => seedState(a) })
let engine: FakeEngine | null = null
if (as) {
  const me = `${as}@example.org`
  engine = new FakeEngine({ username: as, password: 'correct horse battery' }, me, seedState(me))
  auth.stored = engine
  // A small picture for the image attachment, drawn here (no binary in the repository).
  const c = document.createElement('canvas')
  c.width = 480
  c.height = 300
  const g = c.getContext('2d')!
  const grad = g.createLinearGradient(0, 0, 480, 300)
  grad.addColorStop(0, '#4f7cff')
  grad.addColorStop(1, '#21c7a8')
  g.fillStyle = grad
  g.fillRect(0, 0, 480, 300)
  g.fillStyle = 'rgba(255,255,255,0.9)'
  g.font = 'bold 36px system-ui'
  g.fillText('Venue map', 150, 160)
  const png = await new Promise<Blob | null>((r) => c.toBlob(r))
  if (png) engine.storeFile('venue-map', png)
  engine.storeFile('booking', new Blob(['%PDF-1.4 fake'], { type: 'application/pdf' }))
  if (q.get('long')) {
    // Two people on other servers whose addresses differ only at the end.
    for (const a of ['someone.with.a.rather.long.name@chat.example.org', 'someone.with.a.rather.long.name@chat.example.com']) {
      engine.directory.add(a)
      const id = await engine.openDirect(a)
      engine.receive(id, a, 'Hello from the other server')
    }
  }
  if (q.get('connection') === 'offline') engine.setConnection('offline')
  if (q.get('ended')) engine.endSession()
}
const route = q.get('route')
if (route) history.replaceState(null, '', route)
;(window as unknown as { fake: unknown }).fake = { auth, engine }

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App auth={auth} />
  </StrictMode>,
)
