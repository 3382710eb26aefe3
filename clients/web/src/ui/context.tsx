// What every screen inside the app shares: the engine and its state, the
// in-memory drafts, the notifier and the theme toggle.
import { createContext, useCallback, useContext, useSyncExternalStore, type ReactNode } from 'react'
import type { Engine, EngineState } from '../engine/types'

const EngineContext = createContext<Engine | null>(null)

export function EngineProvider({ engine, children }: { engine: Engine; children: ReactNode }) {
  return <EngineContext.Provider value={engine}>{children}</EngineContext.Provider>
}

export function useEngine(): Engine {
  const e = useContext(EngineContext)
  if (!e) throw new Error('useEngine outside EngineProvider')
  return e
}

/** The engine's current snapshot; re-renders on every change. */
export function useEngineState(): EngineState {
  const engine = useEngine()
  const subscribe = useCallback((l: () => void) => engine.subscribe(l), [engine])
  const get = useCallback(() => engine.getState(), [engine])
  return useSyncExternalStore(subscribe, get, get)
}

/** Composer drafts by conversation id, in memory only (they survive leaving a chat, not a reload). */
export class Drafts {
  private texts = new Map<string, string>()
  get(id: string): string {
    return this.texts.get(id) ?? ''
  }
  set(id: string, text: string): void {
    if (text === '') this.texts.delete(id)
    else this.texts.set(id, text)
  }
}

export const DraftsContext = createContext<Drafts>(new Drafts())

export type Severity = 'error' | 'success' | 'info' | 'warning'
export type Notify = (message: string, severity?: Severity) => void

export const NotifyContext = createContext<Notify>(() => {})

export function useNotify(): Notify {
  return useContext(NotifyContext)
}

export interface ThemeControl {
  mode: 'light' | 'dark'
  toggle: () => void
}

export const ThemeControlContext = createContext<ThemeControl>({ mode: 'light', toggle: () => {} })
