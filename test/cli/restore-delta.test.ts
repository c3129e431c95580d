// The delta restore's flags end to end: --overwrite, --seed, --verify-existing, the report in
// --json and in words, and the safety snapshot that still undoes an in-place restore.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

interface Report {
  replaced: boolean
  filesReused: number
  bytesReused: number
  bytesFromRepository: number
  durationMs: number
  safetySnapshot?: string
}

let work: string
let repo: string
let src: string
let v1: string
let v1Tree: Awaited<ReturnType<typeof captureTree>>
beforeAll(async () => {
  work = await tempDir('ckpt-restore-delta-')
  repo = path.join(work, 'repo')
  src = path.join(work, 'src')
  await fsp.mkdir(src)
  await buildTree(src, {'big.bin': seededBytes(3 * 1024 * 1024, 1), 'a.txt': 'version 1', sub: {dir: {'b.bin': seededBytes(200_000, 2)}}})
  await ckpt(['init', '--repo', repo])
  v1 = (await ckptJson<{id: string}>(['snapshot', src, '--repo', repo])).id
  v1Tree = await captureTree(src)
}, 60_000)
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('restore over an existing tree', () => {
  it('in place: reports what it reused and read; the safety snapshot undoes it', async () => {
    const before = await captureTree(src)
    const fh = await fsp.open(path.join(src, 'big.bin'), 'r+')
    await fh.write(seededBytes(10, 9), 0, 10, 1_500_000)
    await fh.close()
    await fsp.writeFile(path.join(src, 'a.txt'), 'version 2')
    const edited = await captureTree(src)
    const r = await ckptJson<Report>(['restore', v1, '--repo', repo])
    expect(diffTrees(before, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(r.replaced).toBe(true)
    expect(r.filesReused).toBe(1) // sub/b.bin, untouched
    expect(r.bytesReused).toBeGreaterThan(3 * 1024 * 1024 - 600_000)
    expect(r.bytesFromRepository).toBeLessThan(600_000)
    expect(r.durationMs).toBeGreaterThan(0)
    await ckpt(['restore', r.safetySnapshot!, '--repo', repo, '--no-safety-snapshot'])
    expect(diffTrees(edited, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
  })

  it('--target DIR needs --overwrite when DIR is not empty; --overwrite needs --target; the words name the reuse', async () => {
    const target = path.join(work, 'target')
    await fsp.mkdir(target)
    await fsp.writeFile(path.join(target, 'other'), 'x')
    const refused = await ckpt(['restore', v1, '--repo', repo, '--target', target], {expect: 5})
    expect(refused.stderr).toMatch(/--overwrite/)
    await ckpt(['restore', v1, '--repo', repo, '--overwrite'], {expect: 2})
    const r = await ckpt(['restore', v1, '--repo', repo, '--target', target, '--overwrite', '--verify-existing', '--no-safety-snapshot'])
    expect(r.stderr).toMatch(/0 files reused, .* from local files, .* read from the repository, in [\d.]+ s/)
    expect(diffTrees(v1Tree, await captureTree(target), {ignoreRootMtime: true})).toEqual([])
  })

  it('--seed: a fresh target reads its chunks from the seed', async () => {
    // The target of the test before holds v1 (the source now holds the edit, put back by the undo).
    const seed = path.join(work, 'target')
    const r = await ckptJson<Report>(['restore', v1, '--repo', repo, '--target', path.join(work, 'seeded'), '--seed', seed])
    expect(r.bytesFromRepository).toBeLessThan(10_000) // its trees
    expect(r.bytesReused).toBe(3 * 1024 * 1024 + 200_000 + 9)
    expect(diffTrees(await captureTree(seed), await captureTree(path.join(work, 'seeded')), {ignoreRootMtime: true})).toEqual([])
  })
})
