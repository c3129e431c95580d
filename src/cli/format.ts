// Human output helpers: sizes, durations, tables. JSON output never goes through these.
import type {CaptureRecord} from '../snapshot/manifest.js'

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let u = 0
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`
  const m = Math.floor(s / 60)
  return `${m}m${Math.round(s - m * 60).toString().padStart(2, '0')}s`
}

/** Local time without the T and milliseconds, e.g. 2026-11-21 09:14:03. */
export function formatTime(iso: string): string {
  const d = new Date(iso)
  const p = (n: number) => n.toString().padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

/** A plain text table; columns listed in `right` are right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  // A loop, not Math.max(...rows): a spread of more than ~120,000 rows (ckpt find '*') overflows the stack.
  const widths = header.map((h) => h.length)
  for (const r of rows) for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, (r[i] ?? '').length)
  const line = (r: readonly string[]) => r.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/** A pause in ms, short: 0.4ms, 12ms, 1.3s. */
function formatPause(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)}s`
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`
}

/** The CAPTURE column of `ckpt snapshots`: "paused 12ms", "plain", "plain, inconsistent", "-" (not recorded). */
export function formatCapture(c: CaptureRecord | undefined): string {
  if (!c) return '-'
  return `${c.mode}${c.pause ? ` ${formatPause(c.pause.pauseMs)}` : ''}${c.consistent ? '' : ', inconsistent'}`
}

/** Why a capture is not consistent, in a few words: the pause ran over, or the first moves. */
export function describeInconsistency(c: CaptureRecord, listed = 3): string {
  if (c.pause?.timedOut) return `${c.mode} capture: the pause ran past --max-pause (${formatPause(c.pause.pauseMs)}) and the program was resumed mid-copy`
  if (c.moveCount === 0) return `${c.mode} capture`
  const moves = c.moves.slice(0, listed).map((m) => `${m.path} (${m.change})`).join(', ')
  const more = c.moveCount > Math.min(listed, c.moves.length) ? ` and ${c.moveCount - Math.min(listed, c.moves.length)} more` : ''
  return `${c.mode} capture; moved while it was taken: ${moves}${more}`
}

/**
 * oclif's parse errors as one line, whole: "Parsing --keep-last \n\tExpected an integer but
 * received: x\nSee more help with --help" becomes "Parsing --keep-last: Expected an integer but
 * received: x". The first line heads the rest; the lines after it are joined with "; ".
 */
export function usageMessage(message: string): string {
  // oclif colours flag names when it thinks the terminal can (FORCE_COLOR): the text is what counts.
  // eslint-disable-next-line no-control-regex
  const lines = message.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.replace(/\s+/g, ' ').trim()).filter((l) => l !== '' && !/^See more help with/.test(l))
  if (lines.length <= 1) return lines[0] ?? message
  const [head, ...rest] = lines
  return rest.reduce((text, line) => `${text}${/[.:]$/.test(text) ? ' ' : '; '}${line}`, `${head!.replace(/:$/, '')}:`).replace(/:\s*$/, '')
}

/** "1 file", "2 files", "0 directories": a count with its noun. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}
