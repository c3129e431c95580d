// Files that change under the walk are never silent: vanished between listing and reading,
// renamed away, grown, shrunk or deleted while read, each is a warning naming the path and
// counts as incomplete (exit code 3). The archiver's walk hook makes each happen exactly where it
// must, not by timing.
import {appendFileSync, promises as fsp, renameSync, truncateSync, unlinkSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {WalkPoint} from '../../src/snapshot/archiver.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {BlobType} from '../../src/repo/pack.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let repoDir: string
beforeEach(async () => {
  work = await tempDir('ckpt-walk-')
  src = path.join(work, 'src')
  repoDir = path.join(work, 'repo')
  await fsp.mkdir(src)
  await fsp.writeFile(path.join(src, 'stable'), 'stays as it is')
  await initLocalRepository(repoDir, {now: Date.now()})
})
afterEach(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

/** Snapshot `src`, running `act` once at the first hook call that matches. */
async function snapshotWith(point: WalkPoint, at: string, act: () => void) {
  let done = false
  const repo = await openLocalRepository(repoDir)
  const r = await createSnapshot(repo, {
    source: src, program: 'test',
    walkHook: (p, rel) => {
      if (done || p !== point || rel !== at) return
      done = true
      act()
    },
  })
  expect(done, `the walk reached ${point} ${at}`).toBe(true)
  return r.manifest
}

/** The stored content of a top-level file. */
async function stored(tree: string, name: string): Promise<Buffer> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const node = decodeTree(await repo.readBlob(Buffer.from(tree, 'hex'), BlobType.tree), tree).find((n) => n.name.toString() === name)!
  return Buffer.concat(await Promise.all(node.chunks!.map((c) => repo.readBlob(c, BlobType.data))))
}

describe('files that change under the walk', () => {
  test('deleted between listing and stat: vanished, incomplete', async () => {
    await fsp.writeFile(path.join(src, 'gone'), 'x')
    const m = await snapshotWith('listed', '', () => unlinkSync(path.join(src, 'gone')))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'vanished', path: 'gone'})])
    expect(m.summary.incomplete).toBe(1)
  })

  test('renamed between stat and read: vanished, incomplete', async () => {
    await fsp.writeFile(path.join(src, 'moved'), 'x')
    const m = await snapshotWith('stat', 'moved', () => renameSync(path.join(src, 'moved'), path.join(src, 'moved-away')))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'vanished', path: 'moved'})])
    expect(m.summary.incomplete).toBe(1)
  })

  test('grown between stat and read: changed, incomplete, stored as read again', async () => {
    await fsp.writeFile(path.join(src, 'log'), 'line 1\n')
    const m = await snapshotWith('stat', 'log', () => appendFileSync(path.join(src, 'log'), 'line 2\n'))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'changed', path: 'log'})])
    expect(m.summary.incomplete).toBe(1)
    expect((await stored(m.tree, 'log')).toString()).toBe('line 1\nline 2\n')
  })

  test('shrunk after open, before the first read: changed, incomplete', async () => {
    await fsp.writeFile(path.join(src, 'state'), seededBytes(100_000, 3))
    const m = await snapshotWith('open', 'state', () => truncateSync(path.join(src, 'state'), 10))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'changed', path: 'state'})])
    expect(m.summary.incomplete).toBe(1)
  })

  test('a large file grown while open: changed, incomplete', async () => {
    await fsp.writeFile(path.join(src, 'weights'), seededBytes(3 * 1024 * 1024, 4))
    const m = await snapshotWith('open', 'weights', () => appendFileSync(path.join(src, 'weights'), seededBytes(4096, 5)))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'changed', path: 'weights'})])
    expect(m.summary.incomplete).toBe(1)
  })

  test('deleted while open: vanished, incomplete, not stored', async () => {
    await fsp.writeFile(path.join(src, 'tmpfile'), 'contents')
    const m = await snapshotWith('open', 'tmpfile', () => unlinkSync(path.join(src, 'tmpfile')))
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'vanished', path: 'tmpfile'})])
    expect(m.summary.incomplete).toBe(1)
    // The unlink moved its ctime: read again, it is gone.
    await expect(stored(m.tree, 'tmpfile')).rejects.toThrow()
  })

  test('a directory removed between its parent\'s listing and its own: vanished, incomplete', async () => {
    await fsp.mkdir(path.join(src, 'sub'))
    await fsp.writeFile(path.join(src, 'sub', 'f'), 'x')
    const m = await snapshotWith('listed', '', () => {
      unlinkSync(path.join(src, 'sub', 'f'))
      renameSync(path.join(src, 'sub'), path.join(work, 'sub-elsewhere'))
    })
    expect(m.warnings).toEqual([expect.objectContaining({kind: 'vanished', path: 'sub'})])
    expect(m.summary.incomplete).toBe(1)
  })

  test('nothing changing: no warning, complete', async () => {
    const m = await snapshotWith('stat', 'stable', () => undefined)
    expect(m.warnings).toEqual([])
    expect(m.summary.incomplete).toBe(0)
  })
})
