// Times, durations and the retention choices as the screens show them.

export interface TimerOption {
  label: string
  /** null: never */
  seconds: number | null
}

/** The choices of every "disappear after" select, in order. */
export const timerOptions: TimerOption[] = [
  { label: 'Off', seconds: null },
  { label: '5 seconds', seconds: 5 },
  { label: '1 minute', seconds: 60 },
  { label: '1 hour', seconds: 3600 },
  { label: '1 day', seconds: 86400 },
  { label: '1 week', seconds: 604800 },
]

/** Select values are strings; "off" stands for null. */
export function timerValue(seconds: number | null | undefined): string {
  return seconds == null ? 'off' : String(seconds)
}

export function timerSeconds(value: string): number | null {
  return value === 'off' ? null : Number(value)
}

/** A label for any number of seconds (retentions set elsewhere may not be one of the options). */
export function durationLabel(seconds: number): string {
  const known = timerOptions.find((o) => o.seconds === seconds)
  if (known) return known.label
  return shortDuration(seconds * 1000)
}

/** "4s", "3m", "2h", "5d": a countdown's remaining time. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000))
  if (s < 60) return `${s}s`
  if (s <= 3540) return `${Math.ceil(s / 60)}m`
  if (s < 84600) return `${Math.max(1, Math.round(s / 3600))}h`
  return `${Math.max(1, Math.round(s / 86400))}d`
}

const sameDay = (a: Date, b: Date) =>
  a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()

export function clockTime(t: number): string {
  return new Date(t).toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' })
}

/** The sidebar's time: the clock today, the weekday this week, the date before. */
export function listTime(t: number, now = Date.now()): string {
  const d = new Date(t)
  const n = new Date(now)
  if (sameDay(d, n)) return clockTime(t)
  const days = (now - t) / 86400000
  if (days < 6) return d.toLocaleDateString(undefined, { weekday: 'short' })
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: d.getFullYear() === n.getFullYear() ? undefined : 'numeric' })
}

/** A day separator's text: "Today", "Yesterday" or the date. */
export function dayLabel(t: number, now = Date.now()): string {
  const d = new Date(t)
  const n = new Date(now)
  if (sameDay(d, n)) return 'Today'
  const y = new Date(now)
  y.setDate(y.getDate() - 1)
  if (sameDay(d, y)) return 'Yesterday'
  return d.toLocaleDateString(undefined, {
    weekday: 'long', day: 'numeric', month: 'long', year: d.getFullYear() === n.getFullYear() ? undefined : 'numeric',
  })
}

export function dayKey(t: number): string {
  const d = new Date(t)
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`
}

export function fileSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
}

/** The local part of an address, for avatars and group sender names. */
export function localPart(address: string): string {
  const at = address.indexOf('@')
  return at > 0 ? address.slice(0, at) : address
}

export function conversationPath(id: string): string {
  return `/chat/${encodeURIComponent(id)}`
}
