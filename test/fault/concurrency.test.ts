// Concurrency: several `snapshot` processes into one repository at once with `prune` beside them,
// in rounds. Every command succeeds (waiting for locks where it must), and afterwards the
// repository verifies with --read-data and every snapshot that exists restores exactly the tree
// it was taken of.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {type Captured, captureTree, diffTrees, seededBytes, seededRandom, tempDir} from '../helpers/tree.js'
import {mutateSource} from '../helpers/crash.js'

let root: string
beforeAll(async () => {
  root = await tempDir('ckpt-concurrency-')
})
afterAll(async () => {
  if (root) await fsp.rm(root, {recursive: true, force: true})
})

test('snapshots of three sources at once, with prune beside them: all succeed, nothing is lost', {timeout: 180_000}, async () => {
  const repo = path.join(root, 'repo')
  expect((await runCli(['init', '-q', '--repo', repo])).code).toBe(0)
  const sources = [0, 1, 2].map((i) => path.join(root, `src${i}`))
  for (const [i, src] of sources.entries()) {
    await fsp.mkdir(src)
    // A file shared by all three: their snapshots race to store the same chunks.
    await fsp.writeFile(path.join(src, 'shared'), seededBytes(600_000, 42))
    await fsp.writeFile(path.join(src, 'own'), seededBytes(400_000 + i * 100_000, i + 1))
  }
  const captured = new Map<string, Map<string, Captured>>()
  const rand = seededRandom(5)
  for (let round = 0; round < 2; round++) {
    if (round > 0) for (const src of sources) await mutateSource(src, rand)
    const trees = await Promise.all(sources.map((src) => captureTree(src)))
    const [snaps, pruned] = await Promise.all([
      Promise.all(sources.map((src) => runCli(['snapshot', src, '--json', '--retry-lock', '60s', '--repo', repo]))),
      runCli(['prune', '--keep-last', '1', '-q', '--retry-lock', '60s', '--repo', repo]),
    ])
    expect(pruned.code, pruned.stderr).toBe(0)
    snaps.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(0)
      captured.set((JSON.parse(r.stdout) as {id: string}).id, trees[i]!)
    })
  }
  const v = await runCli(['verify', '--read-data', '-q', '--repo', repo])
  expect(v.code, v.stdout + v.stderr).toBe(0)
  const list = JSON.parse((await runCli(['snapshots', '--json', '--repo', repo])).stdout) as {id: string}[]
  // The last round's three are always kept; earlier ones as prune's timing decided.
  expect(list.length).toBeGreaterThanOrEqual(3)
  for (const {id} of list) {
    const want = captured.get(id)
    expect(want, `snapshot ${id} was taken by this test`).toBeDefined()
    const target = path.join(root, `out-${id.slice(0, 12)}`)
    const r = await runCli(['restore', id, '--target', target, '-q', '--repo', repo])
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(want!, await captureTree(target), {ignoreRootMtime: true}), id).toEqual([])
  }
})
