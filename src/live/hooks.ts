// Hooks: the user's commands around a capture. `pre` and `post` around the whole snapshot,
// `freeze` and `thaw` around the pause window only (a program that can quiesce itself: flush a
// memtable, CHECKPOINT in PostgreSQL, fsfreeze). The rules, in runWithHooks:
//   - a failing `pre` or `freeze` aborts the capture cleanly: nothing more is captured or stored;
//   - `thaw` and `post` always run, whatever happened before (so a thaw must tolerate a freeze that
//     never ran), and their failure is recorded, not fatal: the snapshot is already what it is;
//   - `post` is told the snapshot id (if one was written) and the outcome.
// Each hook runs with /bin/sh -c; its output (stdout and stderr) goes to ckpt's stderr line by line,
// prefixed "[pre] " and so on, and the last part of it is kept for --json and the manifest.
import {spawn} from 'node:child_process'

import {CkptError, ExitCode} from '../core/errors.js'

export type HookPhase = 'pre' | 'freeze' | 'thaw' | 'post'
export const HOOK_PHASES: readonly HookPhase[] = ['pre', 'freeze', 'thaw', 'post']

export type HookCommands = Partial<Record<HookPhase, string>>

/** How the capture ended, as `post` is told (CKPT_OUTCOME). */
export type CaptureOutcome = 'ok' | 'aborted' | 'failed'

export interface HookResult {
  phase: HookPhase
  command: string
  /** The exit code, or null when the hook died of a signal. */
  exitCode: number | null
  signal: string | null
  /** Killed after the hook timeout. */
  timedOut: boolean
  durationMs: number
  /** The end of what the hook printed (stdout and stderr interleaved), at most maxOutputBytes. */
  output: string
  /** Bytes of output dropped from the front to stay within the bound. */
  outputDropped: number
}

export const hookFailed = (r: HookResult): boolean => r.exitCode !== 0

/** A `--pre` or `--freeze` hook failed: the capture was aborted (after `--thaw` and `--post` ran). */
export class HookFailedError extends CkptError {
  readonly code = 'HOOK_FAILED'
  readonly exitCode = ExitCode.failure
}

export interface HookEnvironment {
  /** The directory captured (CKPT_SOURCE). */
  source: string
  /** The repository (CKPT_REPO). */
  repo: string
}

export interface HookOptions {
  /** Where hook output is streamed, prefixed (default process.stderr). */
  stderr?: {write(text: string): unknown}
  /** Output kept per hook (default 64 KiB). */
  maxOutputBytes?: number
  /** Kill a hook (its whole process group) that runs longer than this. */
  timeoutMs?: number
  /** Told of each hook once it has finished, whatever happens after (for --json on a failure). */
  onHook?: (result: HookResult) => void
}

const DEFAULT_MAX_OUTPUT = 64 * 1024

/** Run one hook with /bin/sh -c and the CKPT_* variables added to ckpt's environment. */
export async function runHook(phase: HookPhase, command: string, vars: Record<string, string>, opts: HookOptions = {}): Promise<HookResult> {
  const out = opts.stderr ?? process.stderr
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT
  const prefix = `[${phase}] `
  const t0 = performance.now()
  // Its own process group, so a timeout kills what the hook started too.
  const child = spawn('/bin/sh', ['-c', command], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...vars}, detached: true})
  const kept: Buffer[] = []
  let keptBytes = 0
  let dropped = 0
  const keep = (b: Buffer): void => {
    kept.push(b)
    keptBytes += b.length
    while (keptBytes - kept[0]!.length >= max) {
      const first = kept.shift()!
      keptBytes -= first.length
      dropped += first.length
    }
  }
  const stream = (s: NodeJS.ReadableStream): Promise<void> => {
    let partial = ''
    s.on('data', (d: Buffer) => {
      keep(d)
      const lines = (partial + d.toString('utf8')).split('\n')
      partial = lines.pop()!
      for (const line of lines) out.write(`${prefix}${line}\n`)
    })
    return new Promise((resolve) => s.once('end', () => {
      if (partial) out.write(`${prefix}${partial}\n`)
      resolve()
    }))
  }
  let timedOut = false
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }, opts.timeoutMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c, s) => resolve([c, s]))
    void Promise.all([stream(child.stdout), stream(child.stderr)])
  }).finally(() => clearTimeout(timer))
  let all = Buffer.concat(kept)
  if (all.length > max) {
    dropped += all.length - max
    all = all.subarray(all.length - max)
  }
  const result: HookResult = {
    phase, command, exitCode: code, signal, timedOut,
    durationMs: Math.round((performance.now() - t0) * 10) / 10,
    output: all.toString('utf8'), outputDropped: dropped,
  }
  if (hookFailed(result)) out.write(`${prefix}failed: ${signal ? `killed by ${signal}${timedOut ? ' (timeout)' : ''}` : `exit code ${code}`}\n`)
  opts.onHook?.(result)
  return result
}

/** The steps of a capture, in the order the hooks wrap them. */
export interface CaptureSteps<T> {
  /** After `pre`, before `freeze`: opening the repository, the pre-copy while the program runs. */
  prepare?(): Promise<void>
  /** Between `freeze` and `thaw`: pause, copy what changed aside, resume. */
  window?(): Promise<void>
  /** After `thaw`, before `post`: store and write the manifest (which records the hooks so far). */
  finish(hooks: readonly HookResult[]): Promise<{snapshotId: string; value: T}>
}

export interface HookedCapture<T> {
  value: T
  snapshotId: string
  hooks: HookResult[]
  /** `thaw` or `post` hooks that failed: the snapshot stands, with a warning. */
  failed: HookResult[]
}

/**
 * Run a capture inside its hooks. Returns when the snapshot was written; throws HookFailedError
 * when `pre` or `freeze` failed, or the steps' own error, in both cases only after `thaw` and
 * `post` have run.
 */
export async function runWithHooks<T>(commands: HookCommands, env: HookEnvironment, steps: CaptureSteps<T>, opts: HookOptions = {}): Promise<HookedCapture<T>> {
  const hooks: HookResult[] = []
  const run = async (phase: HookPhase, extra: Record<string, string> = {}): Promise<HookResult | undefined> => {
    const command = commands[phase]
    if (command === undefined) return undefined
    const r = await runHook(phase, command, {CKPT_SOURCE: env.source, CKPT_REPO: env.repo, CKPT_PHASE: phase, ...extra}, opts)
    hooks.push(r)
    return r
  }
  const mustPass = (r: HookResult | undefined): void => {
    if (r && hookFailed(r)) {
      throw new HookFailedError(`--${r.phase} hook failed (${r.signal ? `killed by ${r.signal}` : `exit code ${r.exitCode}`}): snapshot aborted`, {phase: r.phase, exitCode: r.exitCode, signal: r.signal})
    }
  }
  let error: unknown
  let outcome: CaptureOutcome = 'ok'
  let done: {snapshotId: string; value: T} | undefined
  try {
    mustPass(await run('pre'))
    await steps.prepare?.()
    mustPass(await run('freeze'))
    await steps.window?.()
  } catch (err) {
    error = err
    outcome = err instanceof HookFailedError ? 'aborted' : 'failed'
  }
  await run('thaw')
  if (error === undefined) {
    try {
      done = await steps.finish(hooks)
    } catch (err) {
      error = err
      outcome = 'failed'
    }
  }
  await run('post', {CKPT_SNAPSHOT_ID: done?.snapshotId ?? '', CKPT_OUTCOME: outcome})
  if (error !== undefined) {
    if (error instanceof HookFailedError) error.data.hooks = hooks
    throw error
  }
  return {value: done!.value, snapshotId: done!.snapshotId, hooks, failed: hooks.filter(hookFailed)}
}
