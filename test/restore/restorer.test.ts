// The restore's last steps against a destination that changes under it: a target or source
// replaced by a symlink while the tree is being written must never be written through. The
// change is made from inside the restore (its progress callback), so the moment is exact.
import {mkdirSync, promises as fsp, renameSync, symlinkSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BadPathError} from '../../src/core/errors.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {buildTree, tempDir} from '../helpers/tree.js'

let work: string
let repoDir: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-restorer-'))
  repoDir = path.join(work, 'repo')
  await initLocalRepository(repoDir, {now: Date.now()})
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function snapshotOf(src: string, excludes: string[] = []) {
  const repo = await openLocalRepository(repoDir)
  const {id} = await createSnapshot(repo, {source: src, excludes, program: 'test'})
  const {snapshots} = await loadCatalog(repo)
  return {repo, snap: snapshots.find((s) => s.id === id)!}
}

async function leftovers(dest: string): Promise<string[]> {
  return (await fsp.readdir(path.dirname(dest))).filter((n) => n.startsWith(`.${path.basename(dest)}.ckpt-restore-`))
}

describe('a destination replaced by a symlink while the restore runs', () => {
  it('--target: the restore stops (BadPathError), writes nothing through the link and leaves no temp tree', async () => {
    const src = path.join(work, 'src-target')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one', 'b': {dir: {'c': 'two'}}})
    const {repo, snap} = await snapshotOf(src)
    const outside = path.join(work, 'outside-target')
    await fsp.mkdir(outside)
    const target = path.join(work, 'target')
    let swapped = false
    const err = await restoreSnapshot(repo, snap, {
      target,
      onProgress: () => {
        if (swapped) return
        swapped = true
        symlinkSync(outside, target)
      },
    }).catch((e: unknown) => e)
    expect(swapped).toBe(true)
    expect(err).toBeInstanceOf(BadPathError)
    expect((err as Error).message).toMatch(/changed during the restore/)
    expect(await fsp.readdir(outside)).toEqual([])
    expect(await fsp.readlink(target)).toBe(outside)
    expect(await leftovers(target)).toEqual([])
  })

  it('in place, with paths to carry: refused before anything moves; the link\'s target keeps its contents', async () => {
    const src = path.join(work, 'src-inplace')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one', 'x.tmp': 'kept'})
    const {repo, snap} = await snapshotOf(src, ['*.tmp'])
    await fsp.writeFile(path.join(src, 'a'), 'changed')
    // What the link will point to: a directory with an excluded file of its own.
    const outside = path.join(work, 'outside-inplace')
    await fsp.mkdir(outside)
    await fsp.writeFile(path.join(outside, 'x.tmp'), 'not yours')
    let swapped = false
    const err = await restoreSnapshot(repo, snap, {
      onProgress: () => {
        if (swapped) return
        swapped = true
        renameSync(src, `${src}-moved`)
        symlinkSync(outside, src)
      },
    }).catch((e: unknown) => e)
    expect(swapped).toBe(true)
    expect(err).toBeInstanceOf(BadPathError)
    expect((err as Error).message).toMatch(/was replaced during the restore/)
    expect(await fsp.readdir(outside)).toEqual(['x.tmp'])
    expect(await fsp.readFile(path.join(outside, 'x.tmp'), 'utf8')).toBe('not yours')
    expect(await fsp.readlink(src)).toBe(outside)
    expect(await fsp.readFile(path.join(`${src}-moved`, 'x.tmp'), 'utf8')).toBe('kept')
    expect(await leftovers(src)).toEqual([])
  })

  it('in place, nothing to carry: the swap replaces the link itself, never what it points to', async () => {
    const src = path.join(work, 'src-swap')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one'})
    const {repo, snap} = await snapshotOf(src)
    await fsp.writeFile(path.join(src, 'a'), 'changed')
    const outside = path.join(work, 'outside-swap')
    mkdirSync(outside)
    await fsp.writeFile(path.join(outside, 'mine'), 'untouched')
    let swapped = false
    await restoreSnapshot(repo, snap, {
      onProgress: () => {
        if (swapped) return
        swapped = true
        renameSync(src, `${src}-moved`)
        symlinkSync(outside, src)
      },
    })
    expect(swapped).toBe(true)
    expect((await fsp.lstat(src)).isDirectory()).toBe(true)
    expect(await fsp.readFile(path.join(src, 'a'), 'utf8')).toBe('one')
    expect(await fsp.readdir(outside)).toEqual(['mine'])
    expect(await fsp.readFile(path.join(outside, 'mine'), 'utf8')).toBe('untouched')
    expect(await leftovers(src)).toEqual([])
  })
})
