// Progress on long work. Three audiences:
// - a terminal (stderr): a spinner with figures, a percentage and ETA where the total is known
//   (restore: the snapshot's bytes; verify --read-data: its packs), and the rate of bytes moved
//   where there are bytes (snapshot, restore);
// - --json: NDJSON events on stderr, one line each ({"type":"progress",...}), so stdout keeps
//   exactly one JSON document, the result. The first after a second of work, then at most one a
//   second, and a last one with "finished": true: a command shorter than a second prints none.
//   CKPT_PROGRESS_INTERVAL_MS changes the second (0: every update);
// - anything else (cron mail, CI logs): nothing.
// ora is loaded only when there is a terminal to draw on.
import {formatBytes, formatDuration} from './format.js'

export interface ProgressUpdate {
  /** What a terminal shows. */
  text: string
  /** The event's figures under --json (files, bytes, path, phase...). */
  figures?: Record<string, number | string>
  /** Work done of a known total, in one unit (bytes, packs): a percentage and an ETA. */
  done?: number
  total?: number
  /** Bytes moved so far (read, written, sent): a terminal shows their rate. */
  bytes?: number
}

export interface Progress {
  update(u: ProgressUpdate | string): void
  stop(): void
}

export interface ProgressOptions {
  /** The command, named in every event. */
  command: string
  /** The first text a terminal shows. */
  text: string
  /** --quiet: nothing at all. */
  quiet?: boolean
  /** --json: events on stderr instead of a spinner. */
  json?: boolean
}

const NONE: Progress = {update: () => undefined, stop: () => undefined}
/** Terminal redraws at most this often. */
const REDRAW_MS = 100
const EVENT_INTERVAL_MS = 1000

/**
 * Whether to draw: asked for, on a terminal, not in CI, and a terminal that reports a width (on
 * one that reports 0 columns, as `script` without a size does, ora redraws in a busy loop).
 */
export function shouldDraw(enabled: boolean, stream: {isTTY?: boolean; columns?: number}, env: NodeJS.ProcessEnv): boolean {
  return enabled && stream.isTTY === true && !env['CI'] && (stream.columns ?? 0) > 0
}

/** Percent done and the time left at the rate so far (undefined until there is a rate to go by). */
export function estimate(done: number, total: number, elapsedMs: number): {percent: number; etaMs?: number} {
  if (!(total > 0)) return {percent: 100}
  const share = Math.min(1, Math.max(0, done / total))
  const percent = Math.floor(share * 1000) / 10
  if (share === 0 || share === 1 || elapsedMs < 1000) return {percent}
  return {percent, etaMs: Math.round((elapsedMs * (1 - share)) / share)}
}

/** "120 MiB/s" over the time so far (undefined in the first second: too early to mean much). */
export function formatRate(bytes: number, elapsedMs: number): string | undefined {
  if (elapsedMs < 1000) return undefined
  return `${formatBytes(Math.round((bytes * 1000) / elapsedMs))}/s`
}

/** What a terminal shows before an update's text: percentage, rate and ETA, those known. */
export function figuresLine(u: ProgressUpdate, elapsedMs: number): string {
  const e = u.done !== undefined && u.total !== undefined ? estimate(u.done, u.total, elapsedMs) : undefined
  const rate = u.bytes !== undefined ? formatRate(u.bytes, elapsedMs) : undefined
  return [e && `${e.percent.toFixed(1)}%`, rate, e?.etaMs !== undefined && `ETA ${formatDuration(e.etaMs)}`].filter(Boolean).join(', ')
}

/** The NDJSON event of an update. */
export function progressEvent(command: string, u: ProgressUpdate, elapsedMs: number, done = false): string {
  const known = u.done !== undefined && u.total !== undefined ? estimate(u.done, u.total, elapsedMs) : undefined
  return JSON.stringify({
    type: 'progress', command, elapsedMs: Math.round(elapsedMs), ...u.figures,
    ...(u.done !== undefined && u.total !== undefined ? {done: u.done, total: u.total, percent: known!.percent, ...(known!.etaMs !== undefined ? {etaMs: known!.etaMs} : {})} : {}),
    ...(done ? {finished: true} : {}),
  })
}

function normalize(u: ProgressUpdate | string): ProgressUpdate {
  return typeof u === 'string' ? {text: u} : u
}

/**
 * Start progress for a command. `startProgress(enabled, text)` (a spinner or nothing) is the
 * older form, kept for commands that have no JSON events to give.
 */
export async function startProgress(opts: ProgressOptions | boolean, text?: string): Promise<Progress> {
  const o: ProgressOptions = typeof opts === 'boolean' ? {command: '', text: text ?? '', quiet: !opts} : opts
  if (o.quiet) return NONE
  if (o.json) return o.command ? eventProgress(o.command) : NONE
  if (!shouldDraw(true, process.stderr, process.env)) return NONE
  const started = Date.now()
  const {default: ora} = await import('ora')
  const spinner = ora({text: o.text, stream: process.stderr, discardStdin: false}).start()
  let last = 0
  return {
    update(raw) {
      const now = Date.now()
      if (now - last < REDRAW_MS) return
      last = now
      const u = normalize(raw)
      const figures = figuresLine(u, now - started)
      spinner.text = figures ? `${figures} ${u.text}` : u.text
    },
    stop() {
      spinner.stop()
    },
  }
}

function eventProgress(command: string): Progress {
  const env = Number(process.env['CKPT_PROGRESS_INTERVAL_MS'])
  const interval = process.env['CKPT_PROGRESS_INTERVAL_MS'] !== undefined && Number.isFinite(env) && env >= 0 ? env : EVENT_INTERVAL_MS
  const started = performance.now()
  let next = started + interval
  let latest: ProgressUpdate | undefined
  let emitted = false
  return {
    update(raw) {
      latest = normalize(raw)
      const now = performance.now()
      if (now < next) return
      next = now + interval
      emitted = true
      process.stderr.write(progressEvent(command, latest, now - started) + '\n')
    },
    stop() {
      if (emitted && latest) process.stderr.write(progressEvent(command, latest, performance.now() - started, true) + '\n')
    },
  }
}
