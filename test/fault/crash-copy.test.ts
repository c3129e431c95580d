// ckpt copy killed (SIGKILL) at its fault points: after a pack is stored, after an index file,
// just before and just after a manifest. Every time the destination verifies with --read-data
// (a manifest is never there before its blobs), and the next copy finishes the work and restores
// byte for byte. And a prune of the destination while a copy relies on blobs no manifest names yet
// waits for the copy's lock, then keeps them.
import {existsSync, promises as fsp, readFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {copySnapshots} from '../../src/copy/copy.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {verifyRepository} from '../../src/verify/verify.js'
import {runCli} from '../helpers/cli.js'
import {runStopped} from '../helpers/crash.js'
import {waitFor} from '../helpers/programs.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let from: string
let empty: string
const ids: string[] = []

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-crashcopy-'))
  src = path.join(work, 'src')
  from = path.join(work, 'from')
  empty = path.join(work, 'empty')
  await fsp.mkdir(src)
  await buildTree(src, {'a.bin': {file: {random: 3 * 1024 * 1024, seed: 7}}, 'b.txt': 'b\n'})
  await initLocalRepository(from, {now: Date.now()})
  ids.push((await createSnapshot(await openLocalRepository(from), {source: src, program: 'test'})).id)
  await fsp.writeFile(path.join(src, 'c.bin'), seededBytes(1_500_000, 8))
  ids.push((await createSnapshot(await openLocalRepository(from), {source: src, program: 'test'})).id)
  // Small packs, so a copy stores several and passes writer.sealed more than once.
  await initLocalRepository(empty, {now: Date.now(), packSize: 1024 * 1024})
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('ckpt copy killed at each of its fault points', () => {
  let points: string[] = []

  it('passes its fault points in order: packs, index files, then each manifest', async () => {
    const to = path.join(work, 'to-log')
    await fsp.cp(empty, to, {recursive: true})
    const log = path.join(work, 'faults.log')
    const r = await runCli(['copy', '--all', '--from', from, '--to', to, '--no-verify', '-q'], {env: {CKPT_FAULT_LOG: log}})
    expect(r.code, r.stderr).toBe(0)
    points = readFileSync(log, 'utf8').trim().split('\n')
    const firstManifest = points.indexOf('copy.before-manifest@1')
    expect(points.slice(0, firstManifest)).toContain('writer.sealed@2')
    expect(points.slice(0, firstManifest)).toContain('writer.indexed@1')
    expect(points).toContain('copy.after-manifest@2')
  })

  it.each(['writer.sealed@2', 'writer.indexed@1', 'copy.before-manifest@1', 'copy.after-manifest@1', 'copy.before-manifest@2'])('killed at %s: the destination verifies, the next copy succeeds', async (point) => {
    expect(points).toContain(point)
    const to = path.join(work, `to-${point.replace(/[@.]/g, '-')}`)
    await fsp.cp(empty, to, {recursive: true})
    const killed = await runCli(['copy', '--all', '--from', from, '--to', to, '-q'], {env: {CKPT_FAULT: point}})
    expect(killed.signal).toBe('SIGKILL')
    const dst = await openLocalRepository(to)
    const present = await dst.listSnapshotNames()
    expect(ids).toEqual(expect.arrayContaining(present))
    expect((await verifyRepository(dst.backend, {readData: {kind: 'all'}})).errors).toBe(0)

    const next = await copySnapshots(await openLocalRepository(from), await openLocalRepository(to), {refs: [], all: true, filter: {}})
    expect(next.copied.map((c) => c.id).sort()).toEqual(ids.filter((id) => !present.includes(id)).sort())
    expect(next.verify?.ok).toBe(true)
    const back = await openLocalRepository(to)
    expect(await back.listSnapshotNames()).toEqual([...ids].sort())
    expect((await verifyRepository(back.backend, {readData: {kind: 'all'}})).errors).toBe(0)
    const target = path.join(work, `restored-${point.replace(/[@.]/g, '-')}`)
    await restoreSnapshot(back, (await loadCatalog(back)).snapshots.find((s) => s.id === ids[1])!, {target})
    expect(diffTrees(await captureTree(src), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
  })
})

describe('a prune of the destination during a copy', () => {
  it('waits for the copy (its shared lock), then keeps the unreferenced blobs the copy reused', {timeout: 180_000}, async () => {
    const to = path.join(work, 'to-prune')
    await fsp.cp(empty, to, {recursive: true})
    // A killed copy leaves every blob of the first snapshot in the destination, named by no manifest.
    const killed = await runCli(['copy', ids[0]!, '--from', from, '--to', to, '-q'], {env: {CKPT_FAULT: 'copy.before-manifest'}})
    expect(killed.signal).toBe('SIGKILL')
    // The next copy finds them all there and sends nothing; it is stopped before its manifest while a prune runs.
    const faults = path.join(work, 'prune-faults.log')
    let pruned: Promise<{code: number | null; stderr: string}> | undefined
    let sawConflict = false
    const copy = await runStopped(['copy', ids[0]!, '--from', from, '--to', to, '--json'], 'copy.before-manifest', async () => {
      pruned = runCli(['prune', '--keep-last', '10', '--repo', to, '--retry-lock', '2m'], {env: {CKPT_FAULT_LOG: faults}})
      let prunedDone = false
      void pruned.then(() => (prunedDone = true))
      // Once prune has planned and met the copy's shared lock, the copy may go on; a prune that
      // ended without meeting it (it failed) lets it go on too, and the test fails below.
      await waitFor('prune to meet the copy\'s lock', () => {
        sawConflict = existsSync(faults) && readFileSync(faults, 'utf8').includes('lock.conflict@')
        return sawConflict || prunedDone
      }, 120_000)
    })
    expect(copy.stopped).toBe(true)
    expect(sawConflict).toBe(true)
    expect(copy.code).toBe(0)
    const doc = JSON.parse(copy.stdout) as {copied: {id: string}[]; blobs: number}
    expect(doc.copied.map((c) => c.id)).toEqual([ids[0]])
    expect(doc.blobs).toBe(0)
    const prune = await pruned!
    expect(prune.code, prune.stderr).toBe(0)
    const dst = await openLocalRepository(to)
    expect(await dst.listSnapshotNames()).toEqual([ids[0]])
    expect((await verifyRepository(dst.backend, {readData: {kind: 'all'}})).errors).toBe(0)
  })
})
