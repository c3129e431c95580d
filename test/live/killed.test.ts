// ckpt killed while the program it paused is stopped: the watchdog resumes the program, every time,
// within a second. The kills land inside the pause by construction (a fault point there SIGKILLs
// ckpt itself), alternating between right after the program stopped and right before ckpt would
// resume it; then the next snapshot succeeds and leaves nothing behind.
import {readdirSync, readFileSync, promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt, runCli} from '../helpers/cli.js'
import {startStateWriter, type StateWriter} from '../helpers/statewriter.js'
import {tempDir} from '../helpers/tree.js'

let root: string
let writer: StateWriter
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await writer?.stop()
  await fsp.rm(root, {recursive: true, force: true})
})

const state = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0]!

/** Resolves with how long until `pid` is no longer stopped; rejects after `limitMs`. */
async function runningAgainWithin(pid: number, limitMs: number): Promise<number> {
  const t0 = Date.now()
  while (state(pid) === 'T') {
    if (Date.now() - t0 > limitMs) throw new Error(`process ${pid} still stopped after ${limitMs} ms`)
    await new Promise((r) => setTimeout(r, 5))
  }
  return Date.now() - t0
}

test('SIGKILL of ckpt inside the pause: the program runs again within a second, every time', {timeout: 240_000}, async () => {
  const src = path.join(root, 'state')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(src)
  await ckpt(['init', '--repo', repo])
  writer = await startStateWriter(src, path.join(root, 'states.log'), {seed: 21, burst: 10, idleMs: 5})
  const pid = writer.proc.pid!
  const resumedAfter: number[] = []
  for (let i = 0; i < 12; i++) {
    const point = i % 2 === 0 ? 'capture.paused' : 'capture.copied'
    const r = await runCli(['snapshot', src, '--repo', repo, '--pause-pid', String(pid), '-q'], {env: {CKPT_FAULT: point}})
    expect(r.signal, `${point}: ${r.stderr}`).toBe('SIGKILL')
    resumedAfter.push(await runningAgainWithin(pid, 1000))
  }
  // The writer goes on: its log grows after the last kill.
  const before = readFileSync(path.join(root, 'states.log'), 'utf8').length
  const t0 = Date.now()
  while (readFileSync(path.join(root, 'states.log'), 'utf8').length === before) {
    expect(Date.now() - t0, 'the writer made no progress after the kills').toBeLessThan(5000)
    await new Promise((r) => setTimeout(r, 10))
  }
  // The next capture succeeds, consistent, and takes away what the killed ones left.
  const ok = await runCli(['snapshot', src, '--repo', repo, '--pause-pid', String(pid), '--json'])
  expect(ok.code, ok.stderr).toBe(0)
  expect(JSON.parse(ok.stdout).capture).toMatchObject({mode: 'paused', consistent: true})
  const staged = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.state.ckpt-stage-'))
  expect(staged(root)).toEqual([])
  expect(staged('/dev/shm')).toEqual([])
  expect(staged(os.tmpdir())).toEqual([])
  expect(Math.max(...resumedAfter)).toBeLessThan(1000)
})
