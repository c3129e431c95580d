// The race: for a bounded time, two directories that keep changing are snapshotted in loops,
// the newest snapshot is restored in a loop, and prune runs in a loop with policies and
// thresholds that make it delete, repack and merge all the time - all as separate processes,
// as cron would run them. Contents recur, so new snapshots reuse blobs a running prune thinks
// dead. Afterwards the repository verifies clean (ckpt verify --read-data) and every remaining
// snapshot restores byte-identical to what was captured when it was taken.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, expect, test} from 'vitest'

import type {PruneReport} from '../../src/prune/prune.js'
import {runCli} from '../helpers/cli.js'
import {type Captured, captureTree, diffTrees, seededBytes} from '../helpers/tree.js'
import {fixture, type Fixture, restoreAllMatches, verifyClean} from './helpers.js'

const RUN_MS = Number(process.env.CKPT_RACE_MS ?? 20_000)

let f: Fixture
afterAll(async () => {
  await f?.cleanup()
})

/** Step `i` of a directory's life: rewrite, grow, or delete files, with contents that recur. */
async function mutate(dir: string, i: number, seed: number): Promise<void> {
  const k = i % 5
  const file = path.join(dir, `f${k}`)
  if (i % 11 === 10) {
    await fsp.rm(file, {force: true})
  } else {
    // Sizes from 1 KiB to ~150 KiB; content seeds repeat every 7 steps.
    await fsp.writeFile(file, seededBytes(1024 + ((i * 37_000) % 150_000), seed * 100 + (i % 7)))
  }
  if (i % 4 === 0) {
    await fsp.mkdir(path.join(dir, 'sub'), {recursive: true})
    await fsp.writeFile(path.join(dir, 'sub', `s${i % 3}`), `step ${i % 6}\n`.repeat(50 + i))
  }
}

test(`snapshots, restores and prunes racing for ${RUN_MS / 1000} s lose nothing`, {timeout: RUN_MS + 90_000}, async () => {
  f = await fixture({packSize: 1024 * 1024})
  const repo = ['--repo', f.repoDir]
  const dirs = [path.join(f.root, 'a'), path.join(f.root, 'b')]
  for (const d of dirs) await fsp.mkdir(d)
  const captured = new Map<string, Map<string, Captured>>()
  const deadline = Date.now() + RUN_MS
  const failures: string[] = []
  const counts = {snapshots: 0, prunes: 0, restores: 0, rescued: 0, packsDeleted: 0, packsWritten: 0, newSnapshotsMarked: 0}

  const snapshotLoop = async (dir: string, seed: number) => {
    for (let i = 0; Date.now() < deadline; i++) {
      await mutate(dir, i, seed)
      const before = await captureTree(dir)
      const tags = i % 6 === 0 ? ['--tag', 'keep'] : []
      const out = await runCli(['snapshot', dir, '--retry-lock', '60s', '-q', ...tags, ...repo])
      if (out.code !== 0) {
        failures.push(`snapshot ${dir} exited ${out.code}: ${out.stderr}`)
        continue
      }
      captured.set(out.stdout.trim(), before)
      counts.snapshots++
    }
  }

  const pruneLoop = async () => {
    const policies = [
      ['--keep-last', '2'],
      ['--keep-last', '1', '--keep-tag', 'keep', '--repack-threshold', '10%'],
      ['--keep-last', '3', '--no-merge-small'],
      ['--keep-within', '5min', '--keep-last', '1'],
    ]
    for (let i = 0; Date.now() < deadline; i++) {
      const out = await runCli(['prune', ...policies[i % policies.length]!, '--retry-lock', '60s', '--json', ...repo])
      if (out.code !== 0) {
        failures.push(`prune exited ${out.code}: ${out.stdout.slice(0, 2000)} ${out.stderr}`)
        continue
      }
      const report = JSON.parse(out.stdout) as PruneReport
      counts.prunes++
      counts.rescued += report.result!.rescuedPacks.length
      counts.packsDeleted += report.result!.packsDeleted
      counts.packsWritten += report.result!.packsWritten
      counts.newSnapshotsMarked += report.result!.newSnapshotsMarked
    }
  }

  const restoreLoop = async () => {
    for (let i = 0; Date.now() < deadline; i++) {
      const target = path.join(f.root, `restore-${i}`)
      const out = await runCli(['restore', 'latest', '--source', dirs[0]!, '--target', target, '--retry-lock', '60s', '--json', ...repo])
      if (out.code === 4) continue // no snapshot of that directory yet
      if (out.code !== 0) {
        failures.push(`restore exited ${out.code}: ${out.stderr}`)
        continue
      }
      const id = (JSON.parse(out.stdout) as {snapshot: string}).snapshot
      const want = captured.get(id)
      // The loop may finish restoring before the snapshot loop records what it captured.
      for (let wait = 0; !captured.get(id) && wait < 50; wait++) await new Promise((r) => setTimeout(r, 100))
      const expected = want ?? captured.get(id)
      if (!expected) failures.push(`restore of ${id}: never captured`)
      else {
        const diff = diffTrees(expected, await captureTree(target), {ignoreRootMtime: true})
        if (diff.length > 0) failures.push(`restore of ${id} differs: ${diff.join('; ')}`)
      }
      await fsp.rm(target, {recursive: true, force: true})
      counts.restores++
    }
  }

  await Promise.all([snapshotLoop(dirs[0]!, 1), snapshotLoop(dirs[1]!, 2), pruneLoop(), restoreLoop()])
  expect(failures).toEqual([])
  expect(counts.prunes).toBeGreaterThanOrEqual(3)
  expect(counts.snapshots).toBeGreaterThanOrEqual(10)
  expect(counts.packsDeleted).toBeGreaterThan(0)
  console.log(`race: ${JSON.stringify(counts)}`)

  await verifyClean(f.repoDir)
  const remaining = await restoreAllMatches(f.repoDir, captured, f.root)
  expect(remaining).toBeGreaterThanOrEqual(2)

  // Afterwards prune converges: one run tidies, the next has nothing to do.
  const tidy = await runCli(['prune', '--keep-last', '2', '--json', ...repo])
  expect(tidy.code).toBe(0)
  const again = JSON.parse((await runCli(['prune', '--keep-last', '2', '--json', ...repo])).stdout) as PruneReport
  expect(again.plan.changes).toEqual([])
  expect(again.removed).toEqual([])
  await verifyClean(f.repoDir)
})
