// The crash harness: run a ckpt command (snapshot, in-place restore, restore --target, prune)
// in a child process, kill it with SIGKILL at a named fault point (src/core/faultpoint.ts) or at
// a random moment after one, then check what the guarantees of docs/RELIABILITY.md promise:
//   - `verify --read-data` exits 0;
//   - every snapshot whose manifest exists restores to the tree captured before it was taken;
//   - an interrupted in-place restore left the directory wholly old or wholly new, and a
//     restore --target left its target missing or whole;
//   - the next run of the same command succeeds, and leaves no temp file in the repository and
//     no temp tree beside the restore target.
// Pure of vitest: the tests in test/fault/ assert on what it returns, and bench/soak.mjs runs it
// for hours (it bundles this file with esbuild). Everything is seeded: a trial is reproduced
// from (seed, op, fault).
import {spawn} from 'node:child_process'
import {promises as fsp, readFileSync} from 'node:fs'
import path from 'node:path'

import {BIN} from './cli.js'
import {type Captured, captureTree, diffTrees, seededBytes, seededRandom} from './tree.js'

export const CRASH_OPS = ['snapshot', 'restore-inplace', 'restore-target', 'prune', 'restore-delta'] as const
export type CrashOp = (typeof CRASH_OPS)[number]

export interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOpts {
  env?: Record<string, string | undefined>
  /** SIGKILL the child `delayMs` after the `afterHits`th line of the fault log (CKPT_FAULT_LOG) appears. */
  killAfterHits?: {log: string; afterHits: number; delayMs: number}
  timeoutMs?: number
  /** Stop the child at this fault point (CKPT_FAULT=point:stop); once it has stopped, run `meanwhile`, then let it go on. */
  stopAt?: {point: string; meanwhile: () => Promise<void>}
}

/** Run bin/run.js; a child still running after timeoutMs (default 120 s) is killed and reported as a hang. */
export function runCkpt(args: readonly string[], opts: RunOpts = {}): Promise<Run & {hung: boolean; stopped: boolean}> {
  return new Promise((resolve, reject) => {
    const stop = opts.stopAt
    const child = spawn(process.execPath, [BIN, ...args], {
      env: {...process.env, CKPT_REPO: undefined, CKPT_FAULT: stop ? `${stop.point}:stop` : undefined, CKPT_FAULT_LOG: undefined, CI: '1', ...opts.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let hung = false
    let stopped = false
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    const timeout = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, opts.timeoutMs ?? 120_000)
    let poll: NodeJS.Timeout | undefined
    const k = opts.killAfterHits
    if (k) {
      // The event is a line in the log (the child writes it synchronously at each point); polling
      // the file is how we see it. The kill then lands delayMs later, wherever the child is.
      poll = setInterval(() => {
        let lines = 0
        try {
          lines = readFileSync(k.log, 'utf8').split('\n').length - 1
        } catch {
          return
        }
        if (lines >= k.afterHits) {
          clearInterval(poll)
          setTimeout(() => child.kill('SIGKILL'), k.delayMs)
        }
      }, 1)
    }
    if (stop) {
      // The event: the process's state is T (stopped) in /proc.
      poll = setInterval(() => {
        let state: string | undefined
        try {
          state = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/^.*\) /, '')[0]
        } catch {
          return
        }
        if (state !== 'T') return
        clearInterval(poll)
        stopped = true
        stop.meanwhile().then(() => child.kill('SIGCONT'), (err: unknown) => {
          child.kill('SIGKILL')
          reject(err)
        })
      }, 2)
    }
    child.on('close', (code, signal) => {
      clearTimeout(timeout)
      if (poll) clearInterval(poll)
      resolve({code, signal, stdout, stderr, hung, stopped})
    })
  })
}

/** Run the CLI stopped at fault point `point`; once it has stopped there, call `meanwhile`, then let it go on. */
export function runStopped(args: readonly string[], point: string, meanwhile: () => Promise<void>): Promise<Run & {hung: boolean; stopped: boolean}> {
  return runCkpt(args, {stopAt: {point, meanwhile}})
}

export interface Workspace {
  /** Holds pristine/ (the state every trial starts from), work/ (where it runs) and scratch/. */
  root: string
  work: string
  repo: string
  src: string
  /** Target of restore --target. */
  target: string
  scratch: string
  /** The tree each snapshot was taken of, by id. */
  captures: Map<string, Map<string, Captured>>
  /** The snapshots of the pristine state, oldest first. */
  snapshots: string[]
  /** Trials run so far (rotates the sample of snapshots restored without restoreAll). */
  trials: number
}

const repoArgs = (ws: Workspace) => ['--repo', ws.repo]

/** Rewrite, add and remove a few files of `src`, chosen by `rand`. */
export async function mutateSource(src: string, rand: () => number): Promise<void> {
  const seed = () => 1 + Math.floor(rand() * 0x7fff_ffff)
  const size = () => 1000 + Math.floor(rand() * 400_000)
  const names = (await fsp.readdir(src, {recursive: true, withFileTypes: true})).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))
  names.sort()
  if (names.length > 0) await fsp.writeFile(names[Math.floor(rand() * names.length)]!, seededBytes(size(), seed()))
  await fsp.mkdir(path.join(src, 'd', 'e'), {recursive: true})
  await fsp.writeFile(path.join(src, rand() < 0.5 ? 'd' : 'd/e', `n${seed()}`), seededBytes(size(), seed()))
  if (names.length > 4) await fsp.rm(names[Math.floor(rand() * names.length)]!, {force: true})
}

async function cpa(from: string, to: string): Promise<void> {
  // cp -a keeps nanosecond times and owners: the copy is the same tree to captureTree.
  const r = await new Promise<number | null>((resolve) => spawn('cp', ['-a', from, to], {stdio: 'ignore'}).on('close', resolve))
  if (r !== 0) throw new Error(`cp -a ${from} ${to} failed`)
}

async function must(args: readonly string[], want: readonly number[] = [0]): Promise<Run> {
  const r = await runCkpt(args)
  if (r.code === null || !want.includes(r.code)) throw new Error(`ckpt ${args.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr}`)
  return r
}

/** A repository with three snapshots of a changing source, kept pristine for the trials. */
export async function createWorkspace(root: string, seed: number): Promise<Workspace> {
  const work = path.join(root, 'work')
  const ws: Workspace = {
    root, work, repo: path.join(work, 'repo'), src: path.join(work, 'src'), target: path.join(work, 'out'), scratch: path.join(root, 'scratch'),
    captures: new Map(), snapshots: [], trials: 0,
  }
  await fsp.mkdir(ws.src, {recursive: true})
  await fsp.mkdir(ws.scratch, {recursive: true})
  const rand = seededRandom(seed)
  for (let i = 0; i < 4; i++) await fsp.writeFile(path.join(ws.src, `f${i}`), seededBytes(50_000 + Math.floor(rand() * 300_000), seed + i))
  await fsp.symlink('f0', path.join(ws.src, 'link'))
  await must(['init', '-q', ...repoArgs(ws)])
  for (let i = 0; i < 3; i++) {
    if (i > 0) await mutateSource(ws.src, rand)
    const before = await captureTree(ws.src)
    const r = await must(['snapshot', ws.src, '--json', ...repoArgs(ws)])
    const id = (JSON.parse(r.stdout) as {id: string}).id
    ws.captures.set(id, before)
    ws.snapshots.push(id)
  }
  await cpa(work, path.join(root, 'pristine'))
  return ws
}

async function resetWorkspace(ws: Workspace): Promise<void> {
  await fsp.rm(ws.work, {recursive: true, force: true})
  await fsp.rm(ws.scratch, {recursive: true, force: true})
  await fsp.mkdir(ws.scratch)
  await cpa(path.join(ws.root, 'pristine'), ws.work)
}

interface Prepared {
  args: string[]
  /** What a snapshot taken by this command (snapshot, or in-place restore's safety snapshot) holds. */
  before?: Map<string, Captured>
  /** What the restore writes. */
  expected?: Map<string, Captured>
  restored?: string
}

async function prepare(ws: Workspace, op: CrashOp, seed: number): Promise<Prepared> {
  const rand = seededRandom(seed)
  const pick = ws.snapshots[Math.floor(rand() * ws.snapshots.length)]!
  switch (op) {
    case 'snapshot':
      await mutateSource(ws.src, rand)
      return {args: ['snapshot', ws.src, '-q', ...repoArgs(ws)], before: await captureTree(ws.src)}
    case 'restore-inplace':
      await mutateSource(ws.src, rand)
      return {args: ['restore', pick, '-q', ...repoArgs(ws)], before: await captureTree(ws.src), expected: ws.captures.get(pick), restored: pick}
    case 'restore-delta': {
      // Snapshot the source as it is, so its untouched files are the very inodes the snapshot
      // read (hard linked by the restore), then change a few and restore it in place.
      const expected = await captureTree(ws.src)
      const r = await must(['snapshot', ws.src, '--json', ...repoArgs(ws)])
      const id = (JSON.parse(r.stdout) as {id: string}).id
      ws.captures.set(id, expected)
      await mutateSource(ws.src, rand)
      return {args: ['restore', id, '-q', ...repoArgs(ws)], before: await captureTree(ws.src), expected, restored: id}
    }
    case 'restore-target':
      return {args: ['restore', pick, '--target', ws.target, '-q', ...repoArgs(ws)], expected: ws.captures.get(pick), restored: pick}
    case 'prune':
      return {args: ['prune', '--keep-last', String(1 + Math.floor(rand() * 2)), '-q', ...repoArgs(ws)]}
  }
}

/** The fault points `op` passes through, in order (`name@n`), from one run with CKPT_FAULT_LOG. */
export async function enumeratePoints(ws: Workspace, op: CrashOp, seed: number): Promise<string[]> {
  await resetWorkspace(ws)
  const p = await prepare(ws, op, seed)
  const log = path.join(ws.scratch, 'points.log')
  const r = await runCkpt(p.args, {env: {CKPT_FAULT_LOG: log}})
  if (r.code !== 0) throw new Error(`ckpt ${p.args.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr}`)
  return readFileSync(log, 'utf8').split('\n').filter(Boolean)
}

/** At a fault point (`name@n`), or at a random moment: `delayMs` after the `afterHits`th point. */
export type Fault = {point: string} | {afterHits: number; delayMs: number}

export interface Problem {
  kind: 'exit' | 'hang' | 'stack-trace' | 'atomicity' | 'verify' | 'lost' | 'next-run' | 'leftover'
  message: string
}

export interface TrialResult {
  op: CrashOp
  seed: number
  fault: Fault
  /** The command was killed (false: it finished before the fault). */
  killed: boolean
  problems: Problem[]
  bytesLost: number
  leftovers: string[]
  snapshotsChecked: number
}

export function describeTrial(t: Pick<TrialResult, 'op' | 'seed' | 'fault'>): string {
  const f = 'point' in t.fault ? `CKPT_FAULT=${t.fault.point}` : `kill ${t.fault.delayMs} ms after hit ${t.fault.afterHits}`
  return `${t.op} seed ${t.seed} ${f}`
}

const isStackTrace = (stderr: string) => /\n\s+at .+:\d+:\d+\)?\n/.test(stderr)

export interface TrialOptions {
  /**
   * Restore every snapshot after the crash (default). Without it, only those the command wrote
   * and one of the workspace's (by seed) are restored: a snapshot of the pristine state that
   * still exists after `verify --read-data` passed is, by content addressing, what it was.
   */
  restoreAll?: boolean
}

/** Reset the workspace, run `op` with `fault`, and check every guarantee. */
export async function crashTrial(ws: Workspace, op: CrashOp, seed: number, fault: Fault, opts: TrialOptions = {}): Promise<TrialResult> {
  await resetWorkspace(ws)
  const p = await prepare(ws, op, seed)
  const problems: Problem[] = []
  const log = path.join(ws.scratch, 'hits.log')
  const r = await runCkpt(p.args, 'point' in fault ? {env: {CKPT_FAULT: fault.point}} : {env: {CKPT_FAULT_LOG: log}, killAfterHits: {log, ...fault}})
  const killed = r.signal === 'SIGKILL'
  if (r.hung) problems.push({kind: 'hang', message: `ckpt ${p.args.join(' ')} did not finish`})
  else if (!killed && r.code !== 0) problems.push({kind: 'exit', message: `unfaulted ckpt ${p.args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr}`})
  if (isStackTrace(r.stderr)) problems.push({kind: 'stack-trace', message: r.stderr})

  // Atomicity of the restore's destination.
  if (op === 'restore-inplace' || op === 'restore-delta') {
    const now = await captureTree(ws.src)
    const vsNew = diffTrees(p.expected!, now, {ignoreRootMtime: true})
    const vsOld = diffTrees(p.before!, now, {ignoreRootMtime: true})
    if (vsNew.length > 0 && vsOld.length > 0) problems.push({kind: 'atomicity', message: `in-place restore left neither the old nor the new tree: vs new ${vsNew.slice(0, 5).join('; ')}; vs old ${vsOld.slice(0, 5).join('; ')}`})
  } else if (op === 'restore-target') {
    const exists = await fsp.lstat(ws.target).then(() => true, () => false)
    if (exists) {
      const d = diffTrees(p.expected!, await captureTree(ws.target), {ignoreRootMtime: true})
      if (d.length > 0) problems.push({kind: 'atomicity', message: `restore --target left a partial target: ${d.slice(0, 5).join('; ')}`})
    }
  }

  const v = await runCkpt(['verify', '--read-data', '-q', ...repoArgs(ws)])
  if (v.code !== 0) problems.push({kind: 'verify', message: `verify --read-data exited ${v.code ?? v.signal}: ${v.stdout}${v.stderr}`})
  if (isStackTrace(v.stderr)) problems.push({kind: 'stack-trace', message: v.stderr})

  // Every committed snapshot, whole. One this command wrote holds the tree it was given.
  const sample = opts.restoreAll ?? true ? undefined : ws.snapshots[ws.trials % ws.snapshots.length]
  ws.trials++
  const {bytesLost, checked} = await checkSnapshots(ws, p.before, problems, sample)

  // The next run succeeds.
  const next = await nextRun(ws, op, p, problems)
  if (next) {
    const leftovers = await findLeftovers(ws)
    for (const l of leftovers) problems.push({kind: 'leftover', message: l})
    return {op, seed, fault, killed, problems, bytesLost, leftovers, snapshotsChecked: checked}
  }
  return {op, seed, fault, killed, problems, bytesLost, leftovers: [], snapshotsChecked: checked}
}

async function checkSnapshots(ws: Workspace, made: Map<string, Captured> | undefined, problems: Problem[], only?: string): Promise<{bytesLost: number; checked: number}> {
  const list = await runCkpt(['snapshots', '--json', ...repoArgs(ws)])
  if (list.code !== 0) {
    problems.push({kind: 'lost', message: `snapshots exited ${list.code ?? list.signal}: ${list.stderr}`})
    return {bytesLost: 0, checked: 0}
  }
  let bytesLost = 0
  let checked = 0
  const ids = (JSON.parse(list.stdout) as {id: string}[]).map((s) => s.id)
  for (const id of ids) {
    if (only !== undefined && ws.captures.has(id) && id !== only) continue
    const want = ws.captures.get(id) ?? made
    if (!want) {
      problems.push({kind: 'lost', message: `snapshot ${id} appeared from nowhere`})
      continue
    }
    const out = path.join(ws.scratch, `check-${id.slice(0, 12)}`)
    const r = await runCkpt(['restore', id, '--target', out, '-q', ...repoArgs(ws)])
    checked++
    if (r.code !== 0) {
      bytesLost += treeBytes(want)
      problems.push({kind: 'lost', message: `snapshot ${id} does not restore (exit ${r.code ?? r.signal}): ${r.stderr}`})
      continue
    }
    const got = await captureTree(out)
    const d = diffTrees(want, got, {ignoreRootMtime: true})
    if (d.length > 0) {
      bytesLost += lostBytes(want, got)
      problems.push({kind: 'lost', message: `snapshot ${id} restores differently: ${d.slice(0, 5).join('; ')}`})
    }
    await fsp.rm(out, {recursive: true, force: true})
  }
  return {bytesLost, checked}
}

function treeBytes(t: Map<string, Captured>): number {
  let n = 0
  for (const c of t.values()) n += c.size ?? 0
  return n
}

function lostBytes(want: Map<string, Captured>, got: Map<string, Captured>): number {
  let n = 0
  for (const [k, c] of want) {
    const g = got.get(k)
    if (c.type === 'file' && (!g || g.sha256 !== c.sha256)) n += c.size ?? 0
  }
  return n
}

async function nextRun(ws: Workspace, op: CrashOp, p: Prepared, problems: Problem[]): Promise<boolean> {
  const fail = (message: string) => {
    problems.push({kind: 'next-run', message})
    return false
  }
  switch (op) {
    case 'snapshot': {
      const r = await runCkpt(['snapshot', ws.src, '--json', ...repoArgs(ws)])
      if (r.code !== 0) return fail(`next snapshot exited ${r.code ?? r.signal}: ${r.stderr}`)
      const id = (JSON.parse(r.stdout) as {id: string}).id
      const v = await runCkpt(['verify', id, '--source', ws.src, '-q', ...repoArgs(ws)])
      if (v.code !== 0) return fail(`next snapshot ${id} differs from its source: ${v.stdout}${v.stderr}`)
      return true
    }
    case 'restore-inplace':
    case 'restore-delta': {
      const r = await runCkpt(p.args)
      if (r.code !== 0) return fail(`next in-place restore exited ${r.code ?? r.signal}: ${r.stderr}`)
      const d = diffTrees(p.expected!, await captureTree(ws.src), {ignoreRootMtime: true})
      return d.length > 0 ? fail(`next in-place restore wrote a different tree: ${d.slice(0, 5).join('; ')}`) : true
    }
    case 'restore-target': {
      // A target the crashed run finished stays as it is (checked above); otherwise run again.
      if (!(await fsp.lstat(ws.target).then(() => true, () => false))) {
        const r = await runCkpt(p.args)
        if (r.code !== 0) return fail(`next restore --target exited ${r.code ?? r.signal}: ${r.stderr}`)
      }
      const d = diffTrees(p.expected!, await captureTree(ws.target), {ignoreRootMtime: true})
      return d.length > 0 ? fail(`next restore --target wrote a different tree: ${d.slice(0, 5).join('; ')}`) : true
    }
    case 'prune': {
      const r = await runCkpt(p.args)
      if (r.code !== 0) return fail(`next prune exited ${r.code ?? r.signal}: ${r.stderr}`)
      const v = await runCkpt(['verify', '--read-data', '-q', ...repoArgs(ws)])
      return v.code !== 0 ? fail(`verify after the next prune exited ${v.code ?? v.signal}: ${v.stdout}${v.stderr}`) : true
    }
  }
}

/** Temp files in the repository, and temp trees of restores beside the source and the target. */
export async function findLeftovers(ws: Workspace): Promise<string[]> {
  const out: string[] = []
  for (const e of await fsp.readdir(ws.repo, {recursive: true, withFileTypes: true})) {
    if (e.name.startsWith('.tmp-')) {
      const p = path.join(e.parentPath, e.name)
      const size = (await fsp.stat(p).catch(() => ({size: 0}))).size
      out.push(`repository temp file ${path.relative(ws.repo, p)} (${size} bytes)`)
    }
  }
  for (const name of await fsp.readdir(ws.work)) {
    if (name.includes('.ckpt-restore-')) out.push(`restore temp tree ${name}`)
  }
  return out
}

/** Pick `n` of `items` spread evenly (first and last included), for a bounded sample. */
export function spread<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items]
  const out: T[] = []
  for (let i = 0; i < n; i++) out.push(items[Math.round((i * (items.length - 1)) / Math.max(1, n - 1))]!)
  return out
}
