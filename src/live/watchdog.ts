// The watchdog: a small process that outlives ckpt and resumes the paused program whatever
// happens to ckpt. ckpt starts it before the pause (so its start-up is not in the pause), then
// tells it, over a pipe and before pausing anything, each process and cgroup it is about to pause.
// The watchdog resumes them all when
//   - the pipe closes without "resumed": ckpt died (SIGKILL, a crash, the OOM killer);
//   - the maximum pause elapses: it resumes and reports "timeout" (ckpt records the snapshot as not
//     consistent), then waits for ckpt to finish;
//   - it is itself sent SIGTERM, SIGINT or SIGHUP.
// When ckpt says "resumed" (it has resumed everything itself), the watchdog exits doing nothing.
//
// It runs as `node -e SCRIPT`: no file to locate next to a bundle, and it starts in about the time
// of a bare node (measured in test/live/watchdog.test.ts). It is detached into its own session, so a
// Ctrl-C aimed at ckpt's process group does not reach it, and it holds nothing of ckpt's but the pipe.
import {type ChildProcessByStdio, spawn} from 'node:child_process'
import type {Readable, Writable} from 'node:stream'

import {PauseError, type PauseGuard, type PauseItem, readProcStat} from './pause.js'

// Plain CommonJS, kept small: it is parsed at every start. Lines in: `pid PID STARTTIME`,
// `cgroup VERSION PATH`, `resumed`. Lines out: `ready`, `timeout MS`, `ok`.
const SCRIPT = String.raw`'use strict'
const fs = require('fs')
const maxPauseMs = Number(process.argv[1])
const items = []
let timer = null
let since = 0
const say = (line) => { try { fs.writeSync(1, line + '\n') } catch {} }
function resumeAll() {
  for (const it of items.splice(0)) {
    try {
      if (it.kind === 'cgroup') {
        fs.writeFileSync(it.path + (it.version === 2 ? '/cgroup.freeze' : '/freezer.state'), it.version === 2 ? '0' : 'THAWED')
      } else {
        const text = fs.readFileSync('/proc/' + it.pid + '/stat', 'latin1')
        if (text.slice(text.lastIndexOf(')') + 2).split(' ')[19] === it.startTime) process.kill(it.pid, 'SIGCONT')
      }
    } catch {}
  }
}
function finish() { resumeAll(); process.exit(0) }
function arm() {
  if (timer) return
  since = Date.now()
  timer = setTimeout(() => { timer = null; resumeAll(); say('timeout ' + (Date.now() - since)) }, maxPauseMs)
}
function handle(line) {
  const words = line.split(' ')
  if (words[0] === 'pid') { items.push({kind: 'pid', pid: Number(words[1]), startTime: words[2]}); arm() }
  else if (words[0] === 'cgroup') { items.push({kind: 'cgroup', version: Number(words[1]), path: words.slice(2).join(' ')}); arm() }
  else if (words[0] === 'resumed') { items.length = 0; say('ok'); process.exit(0) }
}
let buf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => {
  buf += d
  for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { handle(buf.slice(0, i)); buf = buf.slice(i + 1) }
})
process.stdin.on('end', finish)
process.stdin.on('error', finish)
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, finish)
process.on('uncaughtException', finish)
say('ready')
`

export interface WatchdogOptions {
  /** Longest pause allowed: past it the watchdog resumes the program and reports it. */
  maxPauseMs: number
}

export class Watchdog implements PauseGuard {
  /** Milliseconds from spawning the watchdog to its "ready" (undefined until then). */
  startMs: number | undefined
  /** Set when the watchdog reports that the maximum pause elapsed and it resumed the program. */
  timedOutAfterMs: number | undefined
  private readonly waiters: (() => void)[] = []
  private exited = false
  private failed: Error | undefined
  private readonly t0 = process.hrtime.bigint()

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, null>) {
    child.stdout.setEncoding('utf8')
    let buf = ''
    child.stdout.on('data', (d: string) => {
      buf += d
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const [word, arg] = buf.slice(0, i).split(' ')
        buf = buf.slice(i + 1)
        if (word === 'ready') this.startMs = Number(process.hrtime.bigint() - this.t0) / 1e6
        if (word === 'timeout') this.timedOutAfterMs = Number(arg)
        this.wake()
      }
    })
    // 'close', not 'exit': it comes after the last line the watchdog wrote (a "timeout") was read.
    child.on('close', () => {
      this.exited = true
      this.wake()
    })
    child.on('error', (err) => {
      this.failed = err
      this.exited = true
      this.wake()
    })
    child.stdin.on('error', () => undefined) // EPIPE once it has exited; the exit is what we report
    // Neither the watchdog nor its pipes keep ckpt alive: when ckpt exits, the pipe closes.
    child.unref()
    for (const s of [child.stdin, child.stdout] as unknown as {unref?: () => void}[]) s.unref?.()
  }

  get pid(): number {
    return this.child.pid!
  }

  /**
   * Spawn a watchdog and return at once: ckpt starts it early (before opening the repository and
   * the pre-copy), so that its start-up overlaps ckpt's own work, and awaits ready() before pausing.
   */
  static spawn(opts: WatchdogOptions): Watchdog {
    const child = spawn(process.execPath, ['-e', SCRIPT, String(Math.max(1, Math.round(opts.maxPauseMs)))], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
      // Nothing of ckpt's environment: NODE_OPTIONS (a loader, --inspect) would slow or break it.
      env: {},
    })
    return new Watchdog(child)
  }

  /** Spawn a watchdog and wait until it listens. */
  static async start(opts: WatchdogOptions): Promise<Watchdog> {
    const wd = Watchdog.spawn(opts)
    await wd.ready()
    return wd
  }

  /** Resolves once the watchdog listens; rejects if it could not start. */
  async ready(): Promise<void> {
    await this.until(() => this.startMs !== undefined || this.exited || this.failed !== undefined)
    if (this.startMs === undefined) throw new Error(`the watchdog could not start: ${this.failed?.message ?? 'it exited'}`)
  }

  /**
   * Tell the watchdog about something about to be paused. Synchronous: a short write to an empty
   * pipe is made by the kernel before write() returns (libuv tries it at once), which is checked, so
   * that a SIGKILL right after this call still leaves the line for the watchdog to read.
   */
  protect(item: PauseItem): void {
    // 'close' arrives through the event loop, which a synchronous pause does not turn: ask /proc.
    const state = readProcStat(this.pid)?.state
    if (this.exited || this.startMs === undefined || state === undefined || state === 'Z') throw new PauseError('the watchdog is not running: cannot pause safely')
    const line = item.kind === 'pid' ? `pid ${item.pid} ${item.startTime}\n` : `cgroup ${item.version} ${item.path}\n`
    this.child.stdin.write(line)
    if (this.child.stdin.writableLength !== 0) throw new PauseError('the watchdog pipe is full: cannot pause safely')
  }

  /** Tell the watchdog that ckpt resumed everything itself, and wait for it to exit. */
  async resumed(): Promise<{timedOutAfterMs: number | undefined}> {
    if (!this.exited) {
      this.child.stdin.end('resumed\n')
      await this.until(() => this.exited)
    }
    return {timedOutAfterMs: this.timedOutAfterMs}
  }

  /** Wait until the watchdog reports that the maximum pause elapsed (tests; ckpt polls timedOutAfterMs). */
  async timeout(): Promise<number> {
    await this.until(() => this.timedOutAfterMs !== undefined || this.exited)
    if (this.timedOutAfterMs === undefined) throw new Error('the watchdog exited without a timeout')
    return this.timedOutAfterMs
  }

  /** Stop the watchdog (it resumes whatever it still holds); for error paths. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGTERM')
  }

  private async until(cond: () => boolean): Promise<void> {
    // Waiting for the watchdog must keep ckpt alive, which its unref'd handles would not.
    const handles = [this.child, this.child.stdout] as unknown as {ref?: () => void; unref?: () => void}[]
    for (const h of handles) h.ref?.()
    try {
      while (!cond()) await new Promise<void>((resolve) => this.waiters.push(resolve))
    } finally {
      for (const h of handles) h.unref?.()
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }
}
