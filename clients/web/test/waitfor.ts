import type { ClosableEngine } from '../src/engine'
import type { EngineState } from '../src/engine/types'

/**
 * Resolves with the engine's state once cond holds (checked on every change
 * and every 50 ms); rejects after ms with the state in the message.
 */
export function waitFor(e: ClosableEngine, cond: (s: EngineState) => boolean, what: string, ms = 40_000): Promise<EngineState> {
  return new Promise((resolve, reject) => {
    let done = false
    const check = () => {
      if (done) return
      const s = e.getState()
      if (cond(s)) {
        done = true
        clearInterval(iv)
        clearTimeout(to)
        unsub()
        resolve(s)
      }
    }
    const unsub = e.subscribe(check)
    const iv = setInterval(check, 50)
    const to = setTimeout(() => {
      done = true
      clearInterval(iv)
      unsub()
      reject(new Error(`timed out waiting for ${what}; state: ${JSON.stringify(e.getState()).slice(0, 2000)}`))
    }, ms)
    check()
  })
}
