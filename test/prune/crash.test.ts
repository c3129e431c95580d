// The crash test: prune and snapshot are killed with SIGKILL at random moments (seeded) while
// they work. After every kill the repository verifies clean (ckpt verify --read-data); snapshots
// whose manifest made it restore byte-identical; and at the end a prune and a snapshot succeed,
// after which a second prune has nothing left to do.
//
// A kill waits for its run to be provably under way (a lock of its own in locks/, which a
// snapshot holds while it writes and prune while it plans and deletes), then comes at once or
// after a seeded fraction of how long runs of that kind hold their lock here, so that the
// moments spread over the work however fast the machine is. A kill that leaves the lock behind
// provably landed inside the run: the test counts those and needs some of each kind.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, expect, test} from 'vitest'

import type {PruneReport} from '../../src/prune/prune.js'
import {type RunResult, runCli} from '../helpers/cli.js'
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
  const locksDir = path.join(f.repoDir, 'locks')
  const locks = async () => (await fsp.readdir(locksDir)).filter((n) => !n.startsWith('.'))
  // How long runs of each kind held their lock, from those that completed: kill delays scale with it.
  const held = {prune: [] as number[], snapshot: [] as number[]}
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const kills = {prune: 0, snapshot: 0, insidePrune: 0, insideSnapshot: 0, completed: 0}
  /**
   * Run a command; with `at` (a fraction of a typical locked span; 0: the moment its lock
   * appears) SIGKILL it then. Returns its result and whether a kill provably landed inside it.
   */
  const run = async (kind: 'prune' | 'snapshot', args: string[], at?: number): Promise<{out: RunResult; inside: boolean}> => {
    const before = new Set(await locks())
    const typical = median(held[kind].length ? held[kind] : held.snapshot)
    const afterMs = at === undefined ? Infinity : Math.floor(at * typical)
    const out = await runCli(args, {killWhen: {ready: async () => (await locks()).some((n) => !before.has(n)), afterMs}})
    if (out.signal !== 'SIGKILL') {
      expect(out.code, out.stderr).toBe(0)
      if (out.readyMs !== undefined) held[kind].push(out.ms - out.readyMs)
      return {out, inside: false}
    }
    // A process killed while it held its lock leaves it behind (the next command removes it as stale).
    return {out, inside: (await locks()).some((n) => !before.has(n))}
  }
  /** Take a snapshot (maybe killed); any new manifest holds what was captured before it ran. */
  const snapshot = async (at?: number) => {
    await mutate()
    const want = await captureTree(f.src)
    const before = new Set(await names(f, 'snapshots'))
    const r = await run('snapshot', ['snapshot', f.src, '-q', ...repo], at)
    for (const id of await names(f, 'snapshots')) if (!before.has(id)) captured.set(id, want)
    return r
  }
  // Snapshots for prune to delete, and the first measures of how long a snapshot holds its lock.
  for (let i = 0; i < 4; i++) expect((await snapshot()).out.code).toBe(0)

  const policies = [['--keep-last', '3'], ['--keep-last', '2', '--repack-threshold', '5%'], ['--keep-last', '5', '--no-merge-small'], ['--keep-last', '1']]
  const deadline = Date.now() + RUN_MS
  // Past the deadline only until a kill of each kind has provably landed inside a run (a slow
  // machine runs fewer rounds in RUN_MS; a third of the kills come the moment the lock appears),
  // and for a few rounds at most: the expectations below then say what never happened.
  let overtime = 0
  while (Date.now() < deadline || ((kills.insidePrune === 0 || kills.insideSnapshot === 0) && overtime++ < 10)) {
    // A third at once, the rest anywhere up to a little past a typical locked span (some complete).
    const at = rnd() < 1 / 3 ? 0 : rnd() * 1.2
    if (rnd() < 0.6) {
      const {out, inside} = await run('prune', ['prune', ...policies[Math.floor(rnd() * policies.length)]!, '-q', ...repo], at)
      if (out.signal === 'SIGKILL') kills.prune++
      if (inside) kills.insidePrune++
      if (out.signal !== 'SIGKILL') kills.completed++
    } else {
      const {out, inside} = await snapshot(at)
      if (out.signal === 'SIGKILL') kills.snapshot++
      if (inside) kills.insideSnapshot++
      if (out.signal !== 'SIGKILL') kills.completed++
    }
    await verifyClean(f.repoDir)
  }
  console.log(`crash: ${JSON.stringify(kills)}`)
  expect(kills.insidePrune).toBeGreaterThan(0)
  expect(kills.insideSnapshot).toBeGreaterThan(0)

  // Whatever survived restores as it was captured.
  expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBeGreaterThan(0)
  // The next prune and snapshot complete; then prune has nothing left to do.
  expect((await snapshot()).out.code).toBe(0)
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
