// Captures beside a real writer that changes its directory in every way programs do and logs every
// state it gives it. Plain capture tells the truth: each snapshot that ckpt calls consistent must
// restore to a logged state, each one it does not is flagged (exit 3, a warning naming what moved);
// snapshots taken while the writer is stopped by hand are consistent, so both sides are exercised.
// A writer with a shared mapping is never called consistent without a pause (its writes need not
// move any stat). With --pause-pid, every snapshot is consistent and a logged state.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt, runCli} from '../helpers/cli.js'
import {startStateWriter, stateDigest} from '../helpers/statewriter.js'
import {tempDir} from '../helpers/tree.js'

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

interface Taken {id: string; code: number | null; consistent: boolean; stderr: string}

test('a plain capture beside a running writer never claims a state the directory did not have', {timeout: 180_000}, async () => {
  const src = path.join(root, 'state')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(src)
  await ckpt(['init', '--repo', repo])
  const writer = await startStateWriter(src, path.join(root, 'states.log'), {seed: 11, burst: 15, idleMs: 40, mmap: false})
  const taken: Taken[] = []
  let states = new Set<string>()
  try {
    for (let i = 0; i < 12; i++) {
      const stopped = i % 3 === 2
      if (stopped) {
        writer.proc.kill('SIGSTOP')
        // Past the racy window of the writer's last change: what a consistent claim needs.
        const t = Date.now()
        while (Date.now() < t + 80) await new Promise((r) => setTimeout(r, 10))
      }
      const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
      if (stopped) writer.proc.kill('SIGCONT')
      expect([0, 3], r.stderr).toContain(r.code)
      const doc = JSON.parse(r.stdout) as {id: string; capture: {consistent: boolean; moveCount: number}}
      taken.push({id: doc.id, code: r.code, consistent: doc.capture.consistent, stderr: r.stderr})
      if (stopped) expect(doc.capture.consistent, r.stderr).toBe(true)
    }
  } finally {
    states = await writer.stop()
  }
  let flagged = 0
  for (const t of taken) {
    const out = path.join(root, `restore-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    const real = states.has(await stateDigest(out))
    if (t.consistent) {
      expect(real, `snapshot ${t.id} claimed consistent but is not a state the writer had`).toBe(true)
    } else {
      flagged++
      expect(t.code).toBe(3)
      expect(t.stderr).toMatch(/changed while it was captured/)
    }
    await fsp.rm(out, {recursive: true, force: true})
  }
  // The writer ran during the unstopped captures: at least one must have been caught moving.
  expect(flagged).toBeGreaterThan(0)
})

test('a plain capture beside a shared mapping is never called consistent, even with its writer stopped', {timeout: 60_000}, async () => {
  const src = path.join(root, 'mapped-state')
  const repo = path.join(root, 'mapped-repo')
  await fsp.mkdir(src)
  await ckpt(['init', '--repo', repo])
  const writer = await startStateWriter(src, path.join(root, 'mapped-states.log'), {seed: 13})
  try {
    writer.proc.kill('SIGSTOP')
    const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
    expect(r.code, r.stderr).toBe(3)
    const doc = JSON.parse(r.stdout) as {capture: {consistent: boolean; moves: {path: string; change: string}[]}}
    expect(doc.capture.consistent).toBe(false)
    expect(doc.capture.moves).toContainEqual({path: 'shared.mmap', change: 'mapped'})
    expect(r.stderr).toMatch(/shared\.mmap \(mapped\)/)
  } finally {
    await writer.stop()
  }
})

test('with --pause-pid every snapshot is a state the writer really had', {timeout: 180_000}, async () => {
  const src = path.join(root, 'paused-state')
  const repo = path.join(root, 'paused-repo')
  await fsp.mkdir(src)
  await ckpt(['init', '--repo', repo])
  // Busy: short idle gaps, so most pauses land in the middle of an operation's system calls.
  const writer = await startStateWriter(src, path.join(root, 'paused-states.log'), {seed: 12, burst: 40, idleMs: 5})
  const ids: string[] = []
  let states = new Set<string>()
  try {
    for (let i = 0; i < 10; i++) {
      const r = await runCli(['snapshot', src, '--repo', repo, '--pause-pid', String(writer.proc.pid), '--json'])
      expect(r.code, r.stderr).toBe(0)
      const doc = JSON.parse(r.stdout) as {id: string; capture: {mode: string; consistent: boolean; pause: {pauseMs: number; timedOut: boolean}}}
      expect(doc.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
      ids.push(doc.id)
    }
  } finally {
    states = await writer.stop()
  }
  for (const id of ids) {
    const out = path.join(root, `paused-restore-${id.slice(0, 12)}`)
    await ckpt(['restore', id, '--target', out, '--repo', repo, '-q'])
    expect(states.has(await stateDigest(out)), `snapshot ${id} is not a state the writer had`).toBe(true)
    await fsp.rm(out, {recursive: true, force: true})
  }
})
