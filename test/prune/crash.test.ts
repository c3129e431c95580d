// The crash test: prune and snapshot are killed with SIGKILL at random moments (seeded). After
// every kill the repository verifies clean (ckpt verify --read-data); snapshots whose manifest
// made it restore byte-identical; and at the end a prune and a snapshot succeed, after which a
// second prune has nothing left to do.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, expect, test} from 'vitest'

import type {PruneReport} from '../../src/prune/prune.js'
import {runCli} from '../helpers/cli.js'
import {type Captured, captureTree, seededBytes, seededRandom} from '../helpers/tree.js'
import {fixture, type Fixture, names, restoreAllMatches, verifyClean} from './helpers.js'

const RUN_MS = Number(process.env.CKPT_CRASH_MS ?? 15_000)
const SEED = Number(process.env.CKPT_CRASH_SEED ?? 20261121)

let f: Fixture
afterAll(async () => {
  await f?.cleanup()
})

/** xorshift32: the kill delays and operations of a run are reproducible from SEED. */
test(`kill -9 at random points for ${RUN_MS / 1000} s leaves a consistent repository`, {timeout: RUN_MS + 90_000}, async () => {
  const rnd = seededRandom(SEED)
  f = await fixture({packSize: 1024 * 1024})
  const repo = ['--repo', f.repoDir]
  const captured = new Map<string, Map<string, Captured>>()
  let step = 0
  const mutate = async () => {
    step++
    for (let k = 0; k < 3; k++) {
      // Several files change per step, with contents that recur (seeds cycle), sizes up to ~400 KiB.
      const n = Math.floor(rnd() * 8)
      await fsp.writeFile(path.join(f.src, `f${n}`), seededBytes(2048 + Math.floor(rnd() * 400_000), 1 + (step % 9) * 10 + n))
    }
  }
  /** Take a snapshot (maybe killed); any new manifest holds what was captured before it ran. */
  const snapshot = async (killAfterMs?: number) => {
    await mutate()
    const want = await captureTree(f.src)
    const before = new Set(await names(f, 'snapshots'))
    const out = await runCli(['snapshot', f.src, '-q', ...repo], {killAfterMs})
    for (const id of await names(f, 'snapshots')) if (!before.has(id)) captured.set(id, want)
    return out
  }
  // The kill delays scale with how long a snapshot takes here (start-up included), so that most
  // kills land inside a run however fast or slow the machine is.
  const started = Date.now()
  for (let i = 0; i < 8; i++) expect((await snapshot()).code).toBe(0)
  const typicalMs = Math.max(100, (Date.now() - started) / 8)

  const policies = [['--keep-last', '3'], ['--keep-last', '2', '--repack-threshold', '5%'], ['--keep-last', '5', '--no-merge-small'], ['--keep-last', '1']]
  const deadline = Date.now() + RUN_MS
  const kills = {prune: 0, snapshot: 0, completed: 0}
  while (Date.now() < deadline) {
    // From a third of a typical run to a little past one: anywhere in start-up or the work, and
    // some runs complete.
    const delay = Math.floor(typicalMs * (0.3 + rnd() * 1.0))
    let out
    if (rnd() < 0.6) {
      out = await runCli(['prune', ...policies[Math.floor(rnd() * policies.length)]!, '-q', ...repo], {killAfterMs: delay})
      if (out.signal === 'SIGKILL') kills.prune++
    } else {
      out = await snapshot(delay)
      if (out.signal === 'SIGKILL') kills.snapshot++
    }
    if (out.signal !== 'SIGKILL') {
      expect(out.code, out.stderr).toBe(0)
      kills.completed++
    }
    await verifyClean(f.repoDir)
  }
  console.log(`crash: ${JSON.stringify(kills)}`)
  expect(kills.prune).toBeGreaterThan(0)
  expect(kills.snapshot).toBeGreaterThan(0)

  // Whatever survived restores as it was captured.
  expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBeGreaterThan(0)
  // The next prune and snapshot complete; then prune has nothing left to do.
  expect((await snapshot()).code).toBe(0)
  const done = await runCli(['prune', '--keep-last', '3', '--json', ...repo])
  expect(done.code, done.stderr).toBe(0)
  const again = JSON.parse((await runCli(['prune', '--keep-last', '3', '--json', ...repo])).stdout) as PruneReport
  expect(again.removed).toEqual([])
  expect(again.plan.changes).toEqual([])
  expect(again.plan.packs.unindexed).toBe(0)
  await verifyClean(f.repoDir)
  // Every snapshot left (up to 3: earlier prunes may have kept fewer) restores as captured.
  const left = await names(f, 'snapshots')
  expect(left.length).toBeGreaterThanOrEqual(1)
  expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(left.length)
})
