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
}

export interface RunOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  input?: string
  /** Kill the process with SIGKILL after this many ms. */
  killAfterMs?: number
}

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
    const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs)
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve({code, signal, stdout, stderr})
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
