// Real processes for the live-capture tests: writers to pause, a way to run src/live in a child
// node (bundled with esbuild, since node cannot run the TypeScript sources), and waits on /proc.
import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export function tempDir(prefix = 'ckpt-live-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix))
}

/** The state letter of /proc/PID/stat, or undefined when the process is gone. */
export function procState(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

/**
 * The process and all its descendants are paused: each in state T, or (dash and other shells
 * vfork for each command) in state D waiting for a vfork child that is stopped.
 */
export function treeStopped(pid: number): boolean {
  const tree = [pid, ...descendants(pid)]
  return tree.every((p) => {
    const s = procState(p)
    if (s === undefined || s === 'T' || s === 'Z') return true
    return s === 'D' && descendants(p).some((c) => procState(c) === 'T')
  })
}

/** Every descendant of pid (children, their children…), from the ppid field of /proc/PID/stat. */
export function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'latin1')
      const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1])
      byParent.set(ppid, [...(byParent.get(ppid) ?? []), Number(name)])
    } catch {
      // gone
    }
  }
  const out: number[] = []
  const visit = (p: number): void => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c)
      visit(c)
    }
  }
  visit(pid)
  return out
}

/**
 * Poll until cond() holds: these tests wait for the event, with a bound that only a failure reaches
 * (generous: on a loaded machine a python or node child takes seconds to start).
 */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000, everyMs = 2): Promise<number> {
  const t0 = performance.now()
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
  return performance.now() - t0
}

/**
 * A writer that shows progress: appends a line to `file` every few ms, through a `sleep` child
 * (so pausing it means pausing a tree). Progress is the file's size growing.
 */
export function startWriter(file: string, periodS = 0.005): ChildProcess {
  writeFileSync(file, '')
  return spawn('/bin/sh', ['-c', `while :; do echo x >> '${file}'; sleep ${periodS}; done`], {stdio: 'ignore', detached: true})
}

export function sizeOf(file: string): number {
  return statSync(file).size
}

/** Wait until the writer appends again: it is running. */
export async function waitProgress(file: string, timeoutMs: number): Promise<number> {
  const before = sizeOf(file)
  return waitFor(() => sizeOf(file) > before, `progress of ${file}`, timeoutMs, 1)
}

/**
 * Kill a child and everything it started. Children are spawned `detached` (a process group of their
 * own), so one kill of the group reaches even those forked while we look and those orphaned.
 */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const pid = child.pid!
  const gone = new Promise((r) => child.once('exit', r))
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    child.kill('SIGKILL') // not a group leader
  }
  await gone
}

let bundleDir: string | undefined
const bundles = new Map<string, string>()

/**
 * Bundle a script that imports src/live (written as ES module text, with `@live/` standing for
 * src/live/) into a file node can run. Built once per script per test file.
 */
export async function bundleScript(name: string, source: string): Promise<string> {
  const cached = bundles.get(name)
  if (cached) return cached
  bundleDir ??= tempDir('ckpt-live-bundle-')
  const entry = path.join(bundleDir, `${name}.ts`)
  writeFileSync(entry, source.replaceAll('@live/', `${root}/src/live/`))
  const out = path.join(bundleDir, `${name}.mjs`)
  await build({entryPoints: [entry], outfile: out, bundle: true, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning'})
  bundles.set(name, out)
  return out
}

export function cleanupBundles(): void {
  if (bundleDir) rmSync(bundleDir, {recursive: true, force: true})
  bundleDir = undefined
  bundles.clear()
}
