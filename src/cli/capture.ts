// How `ckpt snapshot` captures: from its flags and an optional per-source config file (so a cron
// line can stay `ckpt snapshot DIR --config /etc/ckpt/db.json`), the capture strategy to use.
import {existsSync, readFileSync} from 'node:fs'

import {UsageError} from '../core/errors.js'
import {hookedCapture, pausedCapture} from '../live/capture.js'
import type {HookCommands} from '../live/hooks.js'
import type {CaptureStrategy} from '../snapshot/create.js'
import {parseWait} from './base.js'

export interface CaptureFlags {
  'pause-pid'?: number[]
  'pause-pid-file'?: string[]
  'pause-cgroup'?: string[]
  'max-pause'?: string
  pre?: string
  post?: string
  freeze?: string
  thaw?: string
  exclude?: string[]
  tag?: string[]
}

const CONFIG_KEYS = ['pause-pid', 'pause-pid-file', 'pause-cgroup', 'max-pause', 'pre', 'post', 'freeze', 'thaw', 'exclude', 'tag'] as const
export const DEFAULT_MAX_PAUSE = '5s'

/** Flags given on the command line win over the config file's. */
export function withConfig(flags: CaptureFlags, configPath: string | undefined): CaptureFlags {
  if (!configPath) return flags
  let doc: unknown
  try {
    doc = JSON.parse(readFileSync(configPath, 'utf8'))
  } catch (err) {
    throw new UsageError(`--config ${configPath}: ${(err as Error).message}`)
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`--config ${configPath}: not a JSON object`)
  const out: CaptureFlags = {...flags}
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw new UsageError(`--config ${configPath}: unknown key "${key}" (known: ${CONFIG_KEYS.join(', ')})`)
    const k = key as (typeof CONFIG_KEYS)[number]
    if (out[k] !== undefined && !(Array.isArray(out[k]) && (out[k] as unknown[]).length === 0)) continue
    const list = k === 'pause-pid' || k === 'pause-pid-file' || k === 'pause-cgroup' || k === 'exclude' || k === 'tag'
    const values = Array.isArray(value) ? value : [value]
    if (k === 'pause-pid') {
      if (!values.every((v) => Number.isInteger(v))) throw new UsageError(`--config ${configPath}: "pause-pid" takes process ids`)
      out[k] = values as number[]
    } else if (list) {
      if (!values.every((v) => typeof v === 'string')) throw new UsageError(`--config ${configPath}: "${k}" takes strings`)
      ;(out as Record<string, unknown>)[k] = values
    } else {
      if (typeof value !== 'string') throw new UsageError(`--config ${configPath}: "${k}" takes a string`)
      ;(out as Record<string, unknown>)[k] = value
    }
  }
  return out
}

/** The pids named directly and through pid files (a daemon's pid changes at every restart). */
function pausePids(flags: CaptureFlags): number[] {
  const pids = [...(flags['pause-pid'] ?? [])]
  for (const file of flags['pause-pid-file'] ?? []) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new UsageError(`--pause-pid-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    // PostgreSQL's postmaster.pid holds more lines; the first is the pid.
    const pid = Number(text.split('\n')[0]!.trim())
    if (!Number.isInteger(pid) || pid <= 1) throw new UsageError(`--pause-pid-file ${file}: no process id on its first line`)
    pids.push(pid)
  }
  return pids
}

/** undefined: the plain capture (createSnapshot's default). */
export function captureStrategy(flags: CaptureFlags, repoLocation: string): CaptureStrategy | undefined {
  const hooks: HookCommands = {}
  for (const phase of ['pre', 'post', 'freeze', 'thaw'] as const) if (flags[phase] !== undefined) hooks[phase] = flags[phase]
  const pids = pausePids(flags)
  // Checked now, not after the pre-copy: a typo should cost nothing.
  for (const pid of pids) if (!existsSync(`/proc/${pid}`)) throw new UsageError(`--pause-pid ${pid}: no such process`)
  const cgroups = flags['pause-cgroup'] ?? []
  const maxPauseMs = parseWait(flags['max-pause'] ?? DEFAULT_MAX_PAUSE)
  if (maxPauseMs <= 0) throw new UsageError('--max-pause must be more than 0')
  if (pids.length > 0 || cgroups.length > 0) return pausedCapture({targets: {pids, cgroups}, maxPauseMs, hooks, repoLocation})
  if (flags['max-pause'] !== undefined) throw new UsageError('--max-pause needs --pause-pid, --pause-pid-file or --pause-cgroup')
  if (Object.keys(hooks).length > 0) return hookedCapture(hooks, repoLocation)
  return undefined
}
