// Real programs for the live-capture tests (test/programs/): find them, start them on loopback on a
// free port, wait for the events they signal (a port answering, a pid file, a row count), run their
// checkers, and stop exactly the processes a test started.
import {type ChildProcess, spawn, type SpawnOptions} from 'node:child_process'
import {accessSync, constants as fsc, readFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {ckpt} from './cli.js'

/** The absolute path of `cmd` in `first` directories or on PATH, or undefined: the test then skips. */
export function which(cmd: string, first: readonly string[] = []): string | undefined {
  for (const dir of [...first, ...(process.env.PATH ?? '').split(':')]) {
    if (!dir) continue
    const p = path.join(dir, cmd)
    try {
      accessSync(p, fsc.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return undefined
}

/** A port the kernel just gave out on loopback and took back: free unless someone races us to it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** Poll `probe` (one call at a time) until it returns a value other than undefined/false. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface Ran {code: number | null; stdout: string; stderr: string}

/** Run a command to its end, capturing its output (never throws on a non-zero exit). */
export function run(cmd: string, args: readonly string[], opts: SpawnOptions & {input?: string} = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {...opts, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
    child.stdin!.end(opts.input ?? '')
  })
}

/** Run and demand exit code 0. */
export async function runOk(cmd: string, args: readonly string[], opts: SpawnOptions & {input?: string} = {}): Promise<Ran> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

/** A long-running program a test started; `stop` ends exactly it (by its pid) and waits for it. */
export interface Started {
  proc: ChildProcess
  /** Its output so far (stdout and stderr), for failure messages. */
  output(): string
  stop(signal?: NodeJS.Signals): Promise<void>
}

export function start(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Started {
  const proc = spawn(cmd, args, {...opts, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-8192)
  }
  proc.stdout!.on('data', keep)
  proc.stderr!.on('data', keep)
  const exited = new Promise<void>((r) => proc.on('close', () => r()))
  return {
    proc,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      // A stopped process would not act on SIGTERM: resume it first (a failed test may leave it paused).
      proc.kill('SIGCONT')
      proc.kill(signal)
      await exited
    },
  }
}

/** Does something accept TCP connections on 127.0.0.1:port? */
export function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({host: '127.0.0.1', port})
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

/** uid and gid of a user from /etc/passwd, or undefined. */
export function userIds(name: string): {uid: number; gid: number} | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':')
    if (f[0] === name) return {uid: Number(f[2]), gid: Number(f[3])}
  }
  return undefined
}

export interface Capture {
  mode: string
  consistent: boolean
  pause: {pauseMs: number; copiedFiles: number; copiedBytes: number; copyKind: string; timedOut: boolean; rounds: number}
}
export interface Taken {id: string; capture: Capture; ms: number}

/**
 * `ckpt snapshot DIR <pauseArgs> --json`, n times in a row while the program runs; `between` waits
 * for the program to have made progress before the next one. Each must be consistent and paused.
 */
export async function snapshots(src: string, repo: string, pauseArgs: readonly string[], n: number, between?: () => Promise<unknown>): Promise<Taken[]> {
  const out: Taken[] = []
  for (let i = 0; i < n; i++) {
    if (i > 0 && between) await between()
    const r = await ckpt(['snapshot', src, '--repo', repo, ...pauseArgs, '--json'])
    const doc = JSON.parse(r.stdout) as {id: string; capture: Capture}
    out.push({id: doc.id, capture: doc.capture, ms: r.ms})
  }
  return out
}

/** One line per snapshot for the test's output: what the pause cost. */
export function describePauses(name: string, taken: readonly Taken[]): string {
  return taken.map((t) => `${name} ${t.id.slice(0, 12)}: ${t.capture.mode} consistent=${t.capture.consistent} pause ${t.capture.pause.pauseMs.toFixed(1)} ms, `
    + `${t.capture.pause.copiedFiles} files / ${t.capture.pause.copiedBytes} B copied aside (${t.capture.pause.copyKind}), ${t.capture.pause.rounds} pre-copy rounds, snapshot ${Math.round(t.ms)} ms`).join('\n')
}
