// Pausing a running program for the moment of a capture: every process in the tree of each given
// pid (SIGSTOP), or every process in a cgroup (cgroup v2 `cgroup.freeze`, v1 `freezer.state`).
// Everything here is synchronous on purpose: the pause is the critical section, and nothing else
// in ckpt (timers, I/O callbacks) may run between "stopped" and "resumed" unless the caller awaits.
//
// A pause must never outlive ckpt: the caller passes a guard (the watchdog, watchdog.ts), which is
// told about each process or cgroup *before* it is stopped or frozen, so there is no moment at which
// something is paused and only ckpt knows. In-process, exit and the usual fatal signals resume too.
import {existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {CkptError, ExitCode, UsageError, errnoCode} from '../core/errors.js'
import {mounts} from '../core/mounts.js'

/** The program could not be paused (a process would not stop in time, a cgroup would not freeze). */
export class PauseError extends CkptError {
  readonly code = 'PAUSE_FAILED'
  readonly exitCode = ExitCode.failure
}

/** One thing ckpt pauses; the watchdog resumes exactly these. */
export type PauseItem =
  | {kind: 'pid'; pid: number; startTime: string}
  | {kind: 'cgroup'; path: string; version: 1 | 2}

/** Told about each item before it is paused (the watchdog); must be synchronous. */
export interface PauseGuard {
  protect(item: PauseItem): void
}

export interface PauseTargets {
  /** Roots: each is paused with every descendant, including those forked while stopping. */
  pids?: readonly number[]
  /** cgroup directories (absolute, or relative to the v2 or v1-freezer mount). */
  cgroups?: readonly string[]
}

export interface PauseOptions {
  /** Give up (resume what was paused, throw PauseError) when stopping takes longer than this. */
  timeoutMs: number
  guard?: PauseGuard
  /** Processes never stopped, nor their descendants (ckpt itself, the watchdog); ckpt's own pid is always spared. */
  spare?: readonly number[]
  /** Install exit/signal handlers that resume (default true). */
  resumeOnExit?: boolean
}

export interface ResumeReport {
  /** From the first SIGSTOP/freeze to the last SIGCONT/thaw, in microseconds. */
  pausedUs: number
  /** How long resuming itself took. */
  resumeUs: number
  /** Items that could not be resumed (gone, or the write failed), with why. */
  failures: {item: PauseItem; message: string}[]
}

const nowNs = (): bigint => process.hrtime.bigint()
const usSince = (t: bigint): number => Number((nowNs() - t) / 1000n)

/** Fields of /proc/PID/stat after the command name, which may itself hold spaces and parentheses. */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).split(' ')
}

export interface ProcStat {
  /** One letter: R running, S sleeping, D disk sleep, T stopped, t traced, Z zombie, X dead… */
  state: string
  ppid: number
  /** Clock ticks after boot; with the pid, it names a process across pid reuse. */
  startTime: string
}

/** /proc/PID/stat, or undefined when the process is gone. */
export function readProcStat(pid: number, task?: number): ProcStat | undefined {
  let text: string
  try {
    text = readFileSync(task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'latin1')
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ESRCH') return undefined
    throw err
  }
  const f = statFields(text)
  return {state: f[0]!, ppid: Number(f[1]), startTime: f[19]!}
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ESRCH') return []
    throw err
  }
}

/** Direct children of a process (of every thread of it). */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const tid of listDir(`/proc/${pid}/task`)) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1')
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ESRCH') throw err
    }
    for (const word of text.split(' ')) if (word) out.push(Number(word))
  }
  return out
}

const STOPPED = new Set(['T', 't', 'Z', 'X', 'x'])

// Where a parent waits for its vfork() child to exec or exit, by kernel version.
const VFORK_WAITS = new Set(['kernel_clone', '_do_fork', 'do_fork', 'wait_for_vfork_done'])

/**
 * Every thread of the process is stopped (or the process is gone or dead). A thread waiting in
 * vfork() for a child that is stopped counts as stopped: it cannot run until the child execs, and
 * it will not reach state T before (shells such as dash vfork for every command they run).
 */
export function isStopped(pid: number, onVfork?: () => void): boolean {
  for (const tid of listDir(`/proc/${pid}/task`)) {
    const st = readProcStat(pid, Number(tid))
    if (!st || STOPPED.has(st.state)) continue
    if (st.state === 'D' && waitsForStoppedVforkChild(pid, tid)) {
      onVfork?.()
      continue
    }
    return false
  }
  return true
}

function waitsForStoppedVforkChild(pid: number, tid: string): boolean {
  let wchan = ''
  try {
    wchan = readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'latin1')
  } catch {
    return false
  }
  if (!VFORK_WAITS.has(wchan)) return false
  return childrenOf(pid).some((child) => {
    const st = readProcStat(child)
    return st !== undefined && (st.state === 'T' || st.state === 't')
  })
}

const sleepArray = new Int32Array(new SharedArrayBuffer(4))
/** A short synchronous sleep: the processes being stopped need the CPU we would spin on. */
const sleepUs = (us: number): void => void Atomics.wait(sleepArray, 0, 0, us / 1000)

function waitUntil(done: () => boolean, deadline: bigint, what: () => string): void {
  let pauseUs = 20
  while (!done()) {
    if (nowNs() > deadline) throw new PauseError(`${what()} did not pause in time`)
    sleepUs(pauseUs)
    pauseUs = Math.min(pauseUs * 2, 1000)
  }
}

/** Where the cgroup v2 hierarchy and the v1 freezer are mounted (from /proc/self/mountinfo). */
export function cgroupMounts(): {v2: string[]; freezer: string[]} {
  const v2: string[] = []
  const freezer: string[] = []
  for (const m of mounts()) {
    if (m.fstype === 'cgroup2') v2.push(m.mountPoint)
    else if (m.fstype === 'cgroup' && m.options.includes('freezer')) freezer.push(m.mountPoint)
  }
  return {v2, freezer}
}

/** A cgroup as the user named it, found: its directory and which freezer it has. */
export function resolveCgroup(name: string): {path: string; version: 1 | 2} {
  const mounts = cgroupMounts()
  const candidates = [...(path.isAbsolute(name) ? [name] : []), ...[...mounts.v2, ...mounts.freezer].map((root) => path.join(root, name))]
  for (const dir of candidates) {
    if (existsSync(path.join(dir, 'cgroup.freeze'))) return {path: dir, version: 2}
    if (existsSync(path.join(dir, 'freezer.state'))) return {path: dir, version: 1}
  }
  throw new UsageError(`--pause-cgroup ${name}: no cgroup v2 (cgroup.freeze) or v1 freezer (freezer.state) there`, {cgroup: name, tried: candidates})
}

function readTrim(file: string): string {
  return readFileSync(file, 'latin1').trim()
}

/** A cgroup's freezer says it is frozen (v2: `frozen 1` in cgroup.events; v1: FROZEN, not FREEZING). */
export function isFrozen(cg: {path: string; version: 1 | 2}): boolean {
  if (cg.version === 2) return /^frozen 1$/m.test(readFileSync(path.join(cg.path, 'cgroup.events'), 'latin1'))
  return readTrim(path.join(cg.path, 'freezer.state')) === 'FROZEN'
}

function freezeRequested(cg: {path: string; version: 1 | 2}): boolean {
  if (cg.version === 2) return readTrim(path.join(cg.path, 'cgroup.freeze')) === '1'
  return readTrim(path.join(cg.path, 'freezer.state')) !== 'THAWED'
}

export function setFrozen(cg: {path: string; version: 1 | 2}, frozen: boolean): void {
  if (cg.version === 2) writeFileSync(path.join(cg.path, 'cgroup.freeze'), frozen ? '1' : '0')
  else writeFileSync(path.join(cg.path, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED')
}

/** Every process in a cgroup and its descendant cgroups (both freezers act on the whole subtree). */
export function cgroupPids(dir: string): number[] {
  const out: number[] = []
  const visit = (d: string): void => {
    let text = ''
    try {
      text = readFileSync(path.join(d, 'cgroup.procs'), 'latin1')
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err
    }
    for (const word of text.split('\n')) if (word) out.push(Number(word))
    for (const name of listDir(d)) {
      const sub = path.join(d, name)
      try {
        if (statSync(sub).isDirectory()) visit(sub)
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err
      }
    }
  }
  visit(dir)
  return out
}

/**
 * A program paused by `pause()`. Resume exactly once (it is idempotent): what ckpt stopped gets
 * SIGCONT, what it froze is thawed; processes stopped before ckpt came, and cgroups already frozen,
 * are left as they were.
 */
export class Pause {
  /** Processes ckpt stopped, in the order stopped. */
  readonly processes: {pid: number; startTime: string}[] = []
  /** Processes found already stopped by someone else: left stopped on resume. */
  readonly alreadyStopped: number[] = []
  /** cgroups ckpt froze. */
  readonly cgroups: {path: string; version: 1 | 2}[] = []
  /** When the first item was paused (process.hrtime.bigint()), or undefined when nothing was. */
  startedNs: bigint | undefined
  /** How long pausing took, in microseconds (SIGSTOP to all stopped, freeze to frozen). */
  pauseUs = 0
  private report: ResumeReport | undefined
  private readonly detach: () => void

  constructor(resumeOnExit: boolean) {
    this.detach = resumeOnExit ? resumeOnExitOf(this) : () => undefined
  }

  get paused(): boolean {
    return this.startedNs !== undefined && this.report === undefined
  }

  /** Every pid the pause holds, whether stopped by signal or frozen with its cgroup. */
  pids(): number[] {
    const all = new Set(this.processes.map((p) => p.pid))
    for (const cg of this.cgroups) for (const pid of cgroupPids(cg.path)) all.add(pid)
    for (const pid of this.alreadyStopped) all.add(pid)
    return [...all]
  }

  resume(): ResumeReport {
    if (this.report) return this.report
    const t0 = nowNs()
    const failures: ResumeReport['failures'] = []
    for (const cg of this.cgroups) {
      try {
        setFrozen(cg, false)
      } catch (err) {
        failures.push({item: {kind: 'cgroup', ...cg}, message: (err as Error).message})
      }
    }
    for (const p of this.processes) {
      // The start time tells a stopped process from a new one that got its pid after it died.
      const st = readProcStat(p.pid)
      if (!st || st.startTime !== p.startTime) {
        failures.push({item: {kind: 'pid', ...p}, message: 'exited while paused'})
        continue
      }
      try {
        process.kill(p.pid, 'SIGCONT')
      } catch (err) {
        failures.push({item: {kind: 'pid', ...p}, message: (err as Error).message})
      }
    }
    const end = nowNs()
    this.report = {pausedUs: this.startedNs === undefined ? 0 : Number((end - this.startedNs) / 1000n), resumeUs: Number((end - t0) / 1000n), failures}
    this.detach()
    return this.report
  }
}

/**
 * Pause the programs named: SIGSTOP every process of each tree, and freeze each cgroup, and return
 * once all of them are really stopped (every thread in state T, every cgroup reporting frozen): a
 * process that was inside write() when signalled finishes that write first. Children forked while
 * stopping are found by re-reading the stopped processes' children until no new one appears. On
 * failure what was paused is resumed before the error is thrown.
 */
export function pause(targets: PauseTargets, opts: PauseOptions): Pause {
  const deadline = nowNs() + BigInt(Math.round(opts.timeoutMs * 1e6))
  // ckpt's ancestors may be in a tree it is asked to pause (a script pausing its own session):
  // stopping them is harmless, they wait for ckpt. ckpt and its descendants must never stop.
  const spare = new Set([process.pid])
  for (const pid of opts.spare ?? []) spare.add(pid)
  for (const pid of targets.pids ?? []) {
    if (!Number.isInteger(pid) || pid <= 1) throw new UsageError(`--pause-pid ${pid}: not a process ckpt can pause`)
    if (spare.has(pid)) throw new UsageError(`--pause-pid ${pid}: that is ckpt itself`)
    if (!readProcStat(pid)) throw new UsageError(`--pause-pid ${pid}: no such process`, {pid})
  }
  const cgroups = (targets.cgroups ?? []).map(resolveCgroup)
  for (const cg of cgroups) {
    const inside = cgroupPids(cg.path).find((pid) => spare.has(pid))
    if (inside !== undefined) throw new UsageError(`--pause-cgroup ${cg.path}: ckpt (pid ${inside}) runs inside it and would freeze itself`)
  }
  const p = new Pause(opts.resumeOnExit ?? true)
  try {
    const t0 = nowNs()
    for (const cg of cgroups) freezeCgroup(p, cg, opts.guard)
    // A frozen task never takes a SIGSTOP: processes of the trees that are in a frozen cgroup are
    // held already (their children are still looked for).
    const frozen = new Set(cgroups.flatMap((cg) => cgroupPids(cg.path)))
    stopTrees(p, targets.pids ?? [], spare, frozen, deadline, opts.guard)
    for (const cg of p.cgroups) waitUntil(frozenOrKick(cg), deadline, () => `cgroup ${cg.path}`)
    p.pauseUs = usSince(t0)
  } catch (err) {
    p.resume()
    throw err
  }
  return p
}

/**
 * The v1 freezer can stay FREEZING: a task it asked to freeze in the middle of vfork or exec is
 * not asked again (measured here: 8 of 40 freezes of shell loops stuck for 2 s). As runc does, ask
 * again at every look, and now and then thaw and freeze anew. v2 needs none of it.
 */
function frozenOrKick(cg: {path: string; version: 1 | 2}): () => boolean {
  let looks = 0
  return () => {
    if (isFrozen(cg)) return true
    if (cg.version === 1) {
      if (++looks % 25 === 0) setFrozen(cg, false)
      setFrozen(cg, true)
    }
    return false
  }
}

function freezeCgroup(p: Pause, cg: {path: string; version: 1 | 2}, guard: PauseGuard | undefined): void {
  if (freezeRequested(cg)) return // someone else's freeze: not ours to lift
  guard?.protect({kind: 'cgroup', ...cg})
  p.startedNs ??= nowNs()
  p.cgroups.push(cg)
  setFrozen(cg, true)
}

function stopTrees(p: Pause, roots: readonly number[], spare: ReadonlySet<number>, frozen: ReadonlySet<number>, deadline: bigint, guard: PauseGuard | undefined): void {
  const seen = new Set<number>()
  let frontier = [...roots]
  // Signal the whole tree as fast as it can be read, without waiting for each generation to stop
  // (a busy machine takes a scheduling slice per stop); then wait once, and look again: once every
  // process is stopped its list of children is final, so a round that finds no new child ends it.
  while (frontier.length > 0) {
    const signalled: number[] = []
    while (frontier.length > 0) {
      const next: number[] = []
      for (const pid of frontier) {
        if (seen.has(pid) || spare.has(pid)) continue
        seen.add(pid)
        if (!frozen.has(pid) && stopOne(p, pid, guard)) signalled.push(pid)
        next.push(...childrenOf(pid))
      }
      frontier = next
    }
    let inClone = false
    for (const pid of signalled) waitUntil(() => isStopped(pid, () => (inClone = true)), deadline, () => `process ${pid}${describe(pid)}`)
    // A plain fork() passes through the same wait for a moment, and its child appears only once it
    // returns: give it that moment before the last look for children (a vfork waits on).
    if (inClone) sleepUs(1000)
    for (const pid of seen) {
      if (spare.has(pid)) continue
      for (const child of childrenOf(pid)) if (!seen.has(child)) frontier.push(child)
    }
  }
}

/** SIGSTOP one process, unless it is gone or already stopped (then it is someone else's to resume). */
function stopOne(p: Pause, pid: number, guard: PauseGuard | undefined): boolean {
  const st = readProcStat(pid)
  if (!st || st.state === 'Z' || st.state === 'X' || st.state === 'x') return false // exited: nothing to stop
  if (st.state === 'T' || st.state === 't') {
    p.alreadyStopped.push(pid)
    return false
  }
  guard?.protect({kind: 'pid', pid, startTime: st.startTime})
  p.startedNs ??= nowNs()
  try {
    process.kill(pid, 'SIGSTOP')
  } catch (err) {
    if (errnoCode(err) === 'ESRCH') return false
    throw err
  }
  p.processes.push({pid, startTime: st.startTime})
  return true
}

/** " (/usr/bin/foo, state D in fuse_wait)": why a process would not stop, for the error. */
function describe(pid: number): string {
  const tasks = listDir(`/proc/${pid}/task`).map((tid) => {
    const st = readProcStat(pid, Number(tid))
    let wchan = ''
    try {
      wchan = readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'latin1')
    } catch {
      // gone
    }
    return st && !STOPPED.has(st.state) ? `state ${st.state}${wchan && wchan !== '0' ? ` in ${wchan}` : ''}` : undefined
  }).filter(Boolean)
  let exe = ''
  try {
    exe = readlinkSync(`/proc/${pid}/exe`)
  } catch {
    // gone, or a kernel thread
  }
  return ` (${[exe, ...tasks].filter(Boolean).join(', ')})`
}

// Fatal signals ckpt resumes on before dying of them; SIGKILL is the watchdog's.
const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const

function resumeOnExitOf(p: Pause): () => void {
  const onExit = (): void => void p.resume()
  const onSignal = (signal: NodeJS.Signals): void => {
    p.resume()
    detach()
    // Die of the signal as if we had not caught it, unless someone else handles it.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  // An uncaught exception ends the process through 'exit' handlers too.
  process.on('exit', onExit)
  for (const s of FATAL_SIGNALS) process.on(s, onSignal)
  let detached = false
  function detach(): void {
    if (detached) return
    detached = true
    process.removeListener('exit', onExit)
    for (const s of FATAL_SIGNALS) process.removeListener(s, onSignal)
  }
  return detach
}
