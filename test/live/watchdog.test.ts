// The program is resumed whatever happens to ckpt: killed at random moments of a pause, timed out,
// interrupted, crashed. A real writer is paused by a real child process running src/live.
import {type ChildProcess, spawn} from 'node:child_process'
import {once} from 'node:events'
import path from 'node:path'
import {mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync} from 'node:fs'

import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {cgroupMounts, pause} from '../../src/live/pause.js'
import {Watchdog} from '../../src/live/watchdog.js'
import {bundleScript, cleanupBundles, procState, startWriter, stopChild, tempDir, treeStopped, waitFor, waitProgress} from './helpers.js'

const dir = tempDir()
const file = path.join(dir, 'log')
let writer: ChildProcess
let pauser: string

// argv: writer pid, max pause ms, what to do once paused (hang | throw | resume), watchdog or not.
const PAUSER = `
import {pause} from '@live/pause.ts'
import {Watchdog} from '@live/watchdog.ts'
const [pid, maxPause] = process.argv.slice(2, 4).map(Number)
const [mode, guarded] = process.argv.slice(4)
const wd = guarded === 'watchdog' ? await Watchdog.start({maxPauseMs: maxPause}) : undefined
if (wd) process.stdout.write('watchdog ' + wd.pid + ' ' + wd.startMs + '\\n')
// With "go", wait for a line on stdin first: the test starts the next pauser while one runs.
if (process.argv[6] === 'go') await new Promise((r) => process.stdin.once('data', r))
const p = pause({pids: [pid]}, {timeoutMs: maxPause, guard: wd, spare: wd ? [wd.pid] : []})
process.stdout.write('paused ' + p.pauseUs + '\\n')
if (mode === 'throw') throw new Error('boom')
if (mode === 'resume') {
  p.resume()
  await wd?.resumed()
  process.stdout.write('done\\n')
} else setInterval(() => undefined, 1 << 30)
`

beforeAll(async () => {
  pauser = await bundleScript('pauser', PAUSER)
  writer = startWriter(file)
  await waitProgress(file, 5000)
})
const pausers: ChildProcess[] = []
afterEach(async () => {
  for (const p of pausers.splice(0)) await stopChild(p)
})
afterAll(async () => {
  await stopChild(writer)
  cleanupBundles()
  rmSync(dir, {recursive: true, force: true})
})

function runPauser(...args: string[]): {child: ChildProcess; lines: string[]} {
  const child = spawn(process.execPath, [pauser, String(writer.pid), ...args], {stdio: ['pipe', 'pipe', 'pipe']})
  pausers.push(child)
  const lines: string[] = []
  child.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)))
  return {child, lines}
}

const writerStopped = (): boolean => treeStopped(writer.pid!)
const alive = (pid: number): boolean => procState(pid) !== undefined && procState(pid) !== 'Z'

describe('the watchdog', () => {
  it('resumes the writer within a second when ckpt is SIGKILLed while it is paused (30 times)', async () => {
    const resumedMs: number[] = []
    const watchdogs: number[] = []
    // The next pauser starts (node, then its watchdog) while this one is tested, and waits for "go".
    const ready = async (): Promise<ReturnType<typeof runPauser>> => {
      const run = runPauser('60000', 'hang', 'watchdog', 'go')
      await waitFor(() => run.lines.some((l) => l.startsWith('watchdog ')), 'a pauser to start')
      return run
    }
    let next = ready()
    for (let i = 0; i < 30; i++) {
      const {child, lines} = await next
      next = i < 29 ? ready() : next
      child.stdin!.write('go\n')
      await waitFor(writerStopped, 'the writer to be paused', 30_000, 1)
      // A random moment of the pause: at once, or up to 15 ms into it (the pauser may still be
      // stopping the writer's children, or writing "paused").
      const delay = Math.floor(Math.random() * 16)
      if (delay) await new Promise((r) => setTimeout(r, delay))
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
      resumedMs.push(await waitProgress(file, 1000))
      watchdogs.push(Number(lines.find((l) => l.startsWith('watchdog '))!.split(' ')[1]))
    }
    // Each watchdog exits once it has resumed the writer.
    await waitFor(() => !watchdogs.some(alive), 'the watchdogs to exit')
    resumedMs.sort((a, b) => a - b)
    console.log(`SIGKILL x30: writer progressing again after median ${resumedMs[15]!.toFixed(1)} ms, max ${resumedMs[29]!.toFixed(1)} ms`)
  }, 300_000) // two node processes start per round: seconds each on a loaded machine

  it('resumes the writer when the maximum pause elapses, and reports it', async () => {
    const wd = await Watchdog.start({maxPauseMs: 150})
    const p = pause({pids: [writer.pid!]}, {timeoutMs: 1000, guard: wd, spare: [wd.pid]})
    expect(writerStopped()).toBe(true)
    const t0 = performance.now()
    const after = await wd.timeout()
    expect(after).toBeGreaterThanOrEqual(150)
    await waitProgress(file, 1000)
    expect(performance.now() - t0).toBeLessThan(1000)
    p.resume()
    expect(await wd.resumed()).toEqual({timedOutAfterMs: after})
  })

  it.each([['v2', cgroupMounts().v2[0]], ['v1 freezer', cgroupMounts().freezer[0]]] as const)('thaws a %s cgroup when the maximum pause elapses', async (_name, root) => {
    if (!root) return
    const cg = path.join(root, `ckpt-wd-${process.pid}-${Date.now()}`)
    mkdirSync(cg)
    const cgFile = path.join(dir, 'cglog')
    const w = startWriter(cgFile)
    try {
      writeFileSync(path.join(cg, 'cgroup.procs'), String(w.pid))
      await waitProgress(cgFile, 5000)
      const wd = await Watchdog.start({maxPauseMs: 150})
      const p = pause({cgroups: [cg]}, {timeoutMs: 1000, guard: wd, spare: [wd.pid]})
      await wd.timeout()
      await waitProgress(cgFile, 1000)
      p.resume()
      await wd.resumed()
    } finally {
      await stopChild(w)
      await waitFor(() => readFileSync(path.join(cg, 'cgroup.procs'), 'latin1').trim() === '', 'the cgroup to empty')
      rmdirSync(cg)
    }
  })

  it('exits doing nothing once ckpt has resumed, and starts fast', async () => {
    const starts: number[] = []
    for (let i = 0; i < 5; i++) {
      const wd = await Watchdog.start({maxPauseMs: 5000})
      starts.push(wd.startMs!)
      const p = pause({pids: [writer.pid!]}, {timeoutMs: 1000, guard: wd, spare: [wd.pid]})
      p.resume()
      expect(await wd.resumed()).toEqual({timedOutAfterMs: undefined})
      expect(alive(wd.pid)).toBe(false)
      await waitProgress(file, 1000)
    }
    starts.sort((a, b) => a - b)
    console.log(`watchdog start (spawn to ready): median ${starts[2]!.toFixed(1)} ms, max ${starts[4]!.toFixed(1)} ms`)
  })

  it('refuses to pause without a live watchdog', async () => {
    const wd = await Watchdog.start({maxPauseMs: 60_000})
    process.kill(wd.pid, 'SIGKILL')
    await waitFor(() => procState(wd.pid) === undefined || procState(wd.pid) === 'Z', 'the watchdog to die')
    expect(() => pause({pids: [writer.pid!]}, {timeoutMs: 1000, guard: wd, spare: [wd.pid]})).toThrow(/watchdog is not running/)
    expect(writerStopped()).toBe(false)
  })

  it('resumes when the watchdog itself is terminated', async () => {
    const wd = await Watchdog.start({maxPauseMs: 60_000})
    pause({pids: [writer.pid!]}, {timeoutMs: 1000, guard: wd, spare: [wd.pid], resumeOnExit: false})
    expect(writerStopped()).toBe(true)
    wd.kill()
    await waitProgress(file, 1000)
  })
})

describe('resuming in-process, without a watchdog', () => {
  it('resumes on an uncaught error', async () => {
    const {child} = runPauser('60000', 'throw', 'none')
    const [code] = await once(child, 'exit')
    expect(code).toBe(1)
    expect(writerStopped()).toBe(false)
    await waitProgress(file, 1000)
  })

  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('resumes on %s and dies of it', async (signal) => {
    const {child, lines} = runPauser('60000', 'hang', 'none')
    await waitFor(() => lines.some((l) => l.startsWith('paused')), 'the pause')
    expect(writerStopped()).toBe(true)
    child.kill(signal)
    const [, sig] = await once(child, 'exit')
    expect(sig).toBe(signal)
    await waitProgress(file, 1000)
  })

  it('resumes and exits cleanly on the normal path', async () => {
    const {child, lines} = runPauser('60000', 'resume', 'watchdog')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(lines).toContain('done')
    await waitProgress(file, 1000)
  })
})
