import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, afterEach, describe, expect, it} from 'vitest'

import {cgroupMounts, cgroupPids, isFrozen, pause, resolveCgroup, setFrozen} from '../../src/live/pause.js'
import {descendants, procState, sizeOf, startWriter, stopChild, tempDir, treeStopped, waitFor, waitProgress} from './helpers.js'

const dir = tempDir()
const children: ChildProcess[] = []
const cgroups: string[] = []

afterEach(async () => {
  // A task frozen by a v1 freezer cannot even die: thaw first.
  for (const cg of cgroups) if (existsSync(path.join(cg, 'freezer.state'))) setFrozen({path: cg, version: 1}, false)
  for (const c of children.splice(0)) await stopChild(c)
  for (const cg of cgroups.splice(0)) {
    await waitFor(() => readFileSync(path.join(cg, 'cgroup.procs'), 'latin1').trim() === '', `${cg} to empty`)
    rmdirSync(cg)
  }
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function writer(name: string): ChildProcess {
  const c = startWriter(path.join(dir, name))
  children.push(c)
  return c
}

const stopped = (pid: number): boolean => procState(pid) === 'T'

describe('pause by process tree', () => {
  it('stops a writer and its children, and resumes exactly them', async () => {
    const file = path.join(dir, 'w1')
    const w = writer('w1')
    await waitProgress(file, 5000)
    const p = pause({pids: [w.pid!]}, {timeoutMs: 2000})
    // A child that exited and is not reaped yet (the parent is stopped) has nothing to stop; one
    // (a `sleep` of the loop) may also have been exiting as it was stopped, and be a zombie now.
    const live = (pid: number): boolean => procState(pid) !== 'Z' && procState(pid) !== undefined
    const tree = [w.pid!, ...descendants(w.pid!)].filter(live)
    expect(treeStopped(w.pid!)).toBe(true)
    expect(p.processes.map((x) => x.pid).filter(live).sort()).toEqual([...tree].sort())
    const size = sizeOf(file)
    await new Promise((r) => setTimeout(r, 30)) // absence of progress: nothing to wait for
    expect(sizeOf(file)).toBe(size)
    const r = p.resume()
    expect(r.failures).toEqual([])
    await waitProgress(file, 1000)
    console.log(`pause tree of ${tree.length}: stop ${p.pauseUs} µs, resume ${r.resumeUs} µs, paused ${r.pausedUs} µs`)
    expect(p.resume()).toBe(r) // idempotent
  })

  it('follows children forked while it stops the tree', async () => {
    // Forks every 2 ms, and each child forks a grandchild: pausing lands in the middle of it.
    const forker = spawn('python3', ['-c', `
import os, signal, time
for _ in range(200):
    if os.fork() == 0:
        if os.fork() == 0:
            signal.pause()
        signal.pause()
    time.sleep(0.002)
signal.pause()
`], {stdio: 'ignore', detached: true})
    children.push(forker)
    await waitFor(() => descendants(forker.pid!).length >= 6, 'the forker to fork')
    const p = pause({pids: [forker.pid!]}, {timeoutMs: 2000})
    const tree = [forker.pid!, ...descendants(forker.pid!)].filter((pid) => procState(pid) !== 'Z')
    expect(treeStopped(forker.pid!)).toBe(true)
    expect(p.processes.map((x) => x.pid).sort()).toEqual([...tree].sort())
    await new Promise((r) => setTimeout(r, 20))
    expect(descendants(forker.pid!).filter((pid) => procState(pid) !== 'Z').length).toBe(tree.length - 1) // nothing runs to fork more
    p.resume()
    await waitFor(() => tree.every((pid) => procState(pid) !== 'T'), 'the tree to run')
    await waitFor(() => descendants(forker.pid!).length > tree.length, 'the forker to fork again')
  })

  it('leaves a process that was already stopped stopped', async () => {
    const file = path.join(dir, 'w2')
    const w = writer('w2')
    await waitProgress(file, 5000)
    process.kill(w.pid!, 'SIGSTOP')
    await waitFor(() => stopped(w.pid!), 'the writer to stop')
    const p = pause({pids: [w.pid!]}, {timeoutMs: 2000})
    expect(p.alreadyStopped).toContain(w.pid!)
    expect(p.processes.map((x) => x.pid)).not.toContain(w.pid!)
    p.resume()
    expect(stopped(w.pid!)).toBe(true)
    process.kill(w.pid!, 'SIGCONT')
  })

  it('refuses to pause ckpt itself or a pid that does not exist', () => {
    expect(() => pause({pids: [process.pid]}, {timeoutMs: 100})).toThrow(/ckpt itself/)
    expect(() => pause({pids: [2 ** 22 + 12345]}, {timeoutMs: 100})).toThrow(/no such process/)
  })

})

const mounts = cgroupMounts()

function makeCgroup(root: string): string {
  const cg = path.join(root, `ckpt-test-${process.pid}-${cgroups.length}-${Date.now()}`)
  mkdirSync(cg)
  cgroups.push(cg)
  return cg
}

describe.each([
  ['v2 cgroup.freeze', mounts.v2[0], 2],
  ['v1 freezer', mounts.freezer[0], 1],
] as const)('pause by cgroup (%s)', (_name, root, version) => {
  it.skipIf(!root)('freezes every process in the cgroup and thaws it', async () => {
    const cg = makeCgroup(root!)
    const file = path.join(dir, `cg${version}`)
    const w = writer(`cg${version}`)
    writeFileSync(path.join(cg, 'cgroup.procs'), String(w.pid))
    await waitProgress(file, 5000)
    expect(resolveCgroup(cg)).toEqual({path: cg, version})
    expect(resolveCgroup(path.basename(cg))).toEqual({path: cg, version}) // relative to the mount
    const p = pause({cgroups: [cg]}, {timeoutMs: 2000})
    expect(isFrozen({path: cg, version})).toBe(true)
    expect(p.pids()).toContain(w.pid!)
    const size = sizeOf(file)
    await new Promise((r) => setTimeout(r, 30))
    expect(sizeOf(file)).toBe(size)
    const r = p.resume()
    expect(r.failures).toEqual([])
    expect(isFrozen({path: cg, version})).toBe(false)
    await waitProgress(file, 1000)
    console.log(`freeze ${_name} (${cgroupPids(cg).length} procs): ${p.pauseUs} µs, thaw ${r.resumeUs} µs`)
  })

  it.skipIf(!root)('pauses a tree and a cgroup that overlap (a frozen task never takes a SIGSTOP)', async () => {
    const cg = makeCgroup(root!)
    const file = path.join(dir, `both${version}`)
    const w = writer(`both${version}`)
    writeFileSync(path.join(cg, 'cgroup.procs'), String(w.pid))
    await waitProgress(file, 5000)
    const p = pause({cgroups: [cg], pids: [w.pid!]}, {timeoutMs: 2000})
    expect(p.processes.map((x) => x.pid)).not.toContain(w.pid!) // held by the freezer, not signalled
    p.resume()
    await waitProgress(file, 1000)
  })

  it.skipIf(!root)('refuses a cgroup that holds ckpt itself', () => {
    const cg = makeCgroup(root!)
    const own = readFileSync('/proc/self/cgroup', 'utf8')
    writeFileSync(path.join(cg, 'cgroup.procs'), String(process.pid))
    try {
      expect(() => pause({cgroups: [cg]}, {timeoutMs: 100})).toThrow(/would freeze itself/)
    } finally {
      // Back to where this process was, so the test cgroup empties.
      const rel = version === 2 ? own.match(/^0::(.*)$/m)![1]! : own.match(/^\d+:freezer:(.*)$/m)![1]!
      writeFileSync(path.join(root!, rel, 'cgroup.procs'), String(process.pid))
    }
  })
})

it.skipIf(!mounts.freezer[0])('gives up in time, and resumes what it stopped, when a process will not stop', async () => {
  // A task frozen by the v1 freezer sleeps in the kernel and never takes a SIGSTOP: stopping its
  // tree must fail within the timeout and leave nothing stopped by ckpt.
  const cg = makeCgroup(mounts.freezer[0]!)
  const file = path.join(dir, 'w3')
  const w = writer('w3')
  writeFileSync(path.join(cg, 'cgroup.procs'), String(w.pid))
  await waitProgress(file, 5000)
  setFrozen({path: cg, version: 1}, true)
  await waitFor(() => isFrozen({path: cg, version: 1}), 'the freezer')
  const t0 = performance.now()
  expect(() => pause({pids: [w.pid!]}, {timeoutMs: 200})).toThrow(/state D in \w+\) did not pause in time/)
  expect(performance.now() - t0).toBeLessThan(2000)
  setFrozen({path: cg, version: 1}, false)
  await waitProgress(file, 1000) // running: no SIGSTOP of ours is left pending
})

it('has no cgroup to freeze at a made-up path', () => {
  expect(existsSync('/sys/fs/cgroup/no-such-ckpt')).toBe(false)
  expect(() => resolveCgroup('no-such-ckpt')).toThrow(/no cgroup/)
})
