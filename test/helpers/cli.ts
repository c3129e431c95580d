// Run the built CLI (bin/run.js) in a child process, as a user or a cron job would.
import {spawn} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin', 'run.js')

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Milliseconds from spawn to exit. */
  ms: number
  /** With killWhen: milliseconds from spawn to when `ready` first held (undefined: it never did). */
  readyMs?: number
}

/** A kill that waits for the event it needs instead of a guessed delay. */
export interface KillWhen {
  /** Polled every few ms (one call at a time) from the spawn until it holds or the process exits. */
  ready: () => boolean | Promise<boolean>
  /** Then SIGKILL after this many ms more: 0 at once, Infinity never (only observe: readyMs). */
  afterMs: number
}

export interface RunOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  input?: string
  /** Kill the process with SIGKILL after this many ms. */
  killAfterMs?: number
  /** Kill the process with SIGKILL once an event has happened (see KillWhen). */
  killWhen?: KillWhen
}

const POLL_MS = 2

export function runCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: {...process.env, CKPT_REPO: undefined, CI: '1', ...opts.env},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    const started = performance.now()
    const timers: NodeJS.Timeout[] = []
    if (opts.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs))
    let exited = false
    let readyMs: number | undefined
    const killWhen = opts.killWhen
    if (killWhen) {
      const poll = async (): Promise<void> => {
        while (!exited) {
          if (await killWhen.ready()) {
            readyMs = performance.now() - started
            if (exited || killWhen.afterMs === Infinity) return
            if (killWhen.afterMs <= 0) child.kill('SIGKILL')
            else timers.push(setTimeout(() => child.kill('SIGKILL'), killWhen.afterMs))
            return
          }
          await new Promise((r) => setTimeout(r, POLL_MS))
        }
      }
      poll().catch(reject)
    }
    child.on('exit', () => (exited = true))
    child.on('close', (code, signal) => {
      exited = true
      for (const t of timers) clearTimeout(t)
      resolve({code, signal, stdout, stderr, ms: performance.now() - started, readyMs})
    })
    child.stdin.end(opts.input ?? '')
  })
}

/** Run and expect exit code `code` (default 0); returns the result, throwing with the output otherwise. */
export async function ckpt(args: readonly string[], opts: RunOptions & {expect?: number} = {}): Promise<RunResult> {
  const r = await runCli(args, opts)
  const want = opts.expect ?? 0
  if (r.code !== want) throw new Error(`ckpt ${args.join(' ')} exited ${r.code} (wanted ${want})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

export async function ckptJson<T = Record<string, unknown>>(args: readonly string[], opts: RunOptions & {expect?: number} = {}): Promise<T> {
  const r = await ckpt([...args, '--json'], opts)
  return JSON.parse(r.stdout) as T
}
