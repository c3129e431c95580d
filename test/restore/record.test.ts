// A restore's record of what it left on disk (snapshot/restorerecord.ts): the next snapshot and
// the next delta restore of the directory trust its files by their stat, as they would a
// snapshot's, and never a file that is not what the restored snapshot holds.
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {writeXattr} from '../../src/core/fsextra.js'
import {setTimesNs} from '../../src/core/fsmeta.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, type SnapshotRecord} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {verifyRepository} from '../../src/verify/verify.js'
import {buildTree, captureTree, diffTrees, pastRacyWindow, seededBytes, tempDir} from '../helpers/tree.js'

let work: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-record-'))
  process.env.CKPT_CACHE_DIR = path.join(work, 'cache')
})

afterAll(async () => {
  delete process.env.CKPT_CACHE_DIR
  await fsp.rm(work, {recursive: true, force: true})
})

async function setup(name: string): Promise<{src: string; repo: Repository; snap: SnapshotRecord}> {
  const src = path.join(work, name)
  await fsp.mkdir(src)
  await buildTree(src, {
    'a.bin': seededBytes(300 * 1024, 1),
    'b.txt': 'bee\n',
    'same-size.txt': 'AAAA',
    'd': {dir: {'c.bin': seededBytes(70 * 1024, 2), 'e': {dir: {'deep.txt': 'deep\n'}}}},
    'empty': {dir: {}},
  })
  await fsp.symlink('a.bin', path.join(src, 'link'))
  await initLocalRepository(`${src}.repo`, {now: Date.now()})
  const repo = await openLocalRepository(`${src}.repo`)
  const {id} = await createSnapshot(repo, {source: src, program: 'test'})
  const snap = (await loadCatalog(repo)).snapshots.find((s) => s.id === id)!
  return {src, repo, snap}
}

async function snapshotCatalogEntry(repo: Repository, id: string): Promise<SnapshotRecord> {
  return (await loadCatalog(repo)).snapshots.find((s) => s.id === id)!
}

describe('restore record', () => {
  it('the first snapshot after a restore reads no file, names the restored snapshot its parent, and is whole', async () => {
    const {src, repo, snap} = await setup('fresh')
    const want = await captureTree(src)
    const out = path.join(work, 'fresh-out')
    const r = await restoreSnapshot(repo, snap, {target: out})
    expect(r.recorded).toBe(true)
    const next = await createSnapshot(repo, {source: out, program: 'test'})
    expect(next.manifest.summary.filesRead).toBe(0)
    expect(next.manifest.parent).toBe(snap.id)
    // Its trees are the repository's (the record's are not): it verifies, and restores to the same tree.
    expect((await verifyRepository(repo.backend, {readData: {kind: 'all'}})).errors).toBe(0)
    const again = path.join(work, 'fresh-again')
    await restoreSnapshot(repo, await snapshotCatalogEntry(repo, next.id), {target: again})
    expect(diffTrees(want, await captureTree(again), {ignoreRootMtime: true})).toEqual([])
    // The snapshot replaced the record: the one after it takes that snapshot as its parent.
    const third = await createSnapshot(repo, {source: out, program: 'test'})
    expect(third.manifest.parent).toBe(next.id)
    expect(third.manifest.summary.filesRead).toBe(0)
  })

  it('a file changed after the restore, even to its old size and mtime, is read again', async () => {
    const {src, repo, snap} = await setup('changed')
    const out = path.join(work, 'changed-out')
    await restoreSnapshot(repo, snap, {target: out})
    const p = path.join(out, 'same-size.txt')
    const before = await fsp.stat(p, {bigint: true})
    await fsp.writeFile(p, 'BBBB')
    setTimesNs(p, before.atimeNs, before.mtimeNs)
    const next = await createSnapshot(repo, {source: out, program: 'test'})
    expect(next.manifest.summary.filesRead).toBe(1)
    const back = path.join(work, 'changed-back')
    await restoreSnapshot(repo, await snapshotCatalogEntry(repo, next.id), {target: back})
    expect(await fsp.readFile(path.join(back, 'same-size.txt'), 'utf8')).toBe('BBBB')
    expect(src).toBeTruthy()
  })

  it('is not used for a directory that is no longer the one restored (a copy in its place)', async () => {
    const {repo, snap} = await setup('moved')
    const out = path.join(work, 'moved-out')
    await restoreSnapshot(repo, snap, {target: out})
    await fsp.rename(out, `${out}-away`)
    await fsp.cp(`${out}-away`, out, {recursive: true, preserveTimestamps: true, verbatimSymlinks: true})
    const next = await createSnapshot(repo, {source: out, program: 'test'})
    expect(next.manifest.summary.filesRead).toBe(5)
  })

  it('a damaged record costs reads, never a wrong snapshot', async () => {
    const {src, repo, snap} = await setup('damaged')
    const want = await captureTree(src)
    const out = path.join(work, 'damaged-out')
    await restoreSnapshot(repo, snap, {target: out})
    const dir = path.join(work, 'cache', 'records', repo.config.id)
    const [name] = await fsp.readdir(dir)
    const file = path.join(dir, name!)
    const bytes = await fsp.readFile(file)
    // A byte inside the first tree (right after the header line).
    bytes[bytes.indexOf(0x0a, bytes.indexOf(0x0a) + 1) + 20]! ^= 0x01
    await fsp.writeFile(file, bytes)
    const next = await createSnapshot(repo, {source: out, program: 'test'})
    expect(next.manifest.summary.filesRead).toBeGreaterThan(0)
    const back = path.join(work, 'damaged-back')
    await restoreSnapshot(repo, await snapshotCatalogEntry(repo, next.id), {target: back})
    expect(diffTrees(want, await captureTree(back), {ignoreRootMtime: true})).toEqual([])
  })

  it('leaves out a path the restore kept from the old tree, though it has the snapshot file\'s size and mtime', async () => {
    const {src, repo, snap} = await setup('kept')
    const p = path.join(src, 'same-size.txt')
    const before = await fsp.stat(p, {bigint: true})
    await fsp.writeFile(p, 'BBBB')
    setTimesNs(p, before.atimeNs, before.mtimeNs)
    // Changed well before the record is made: only the leaving out keeps the record from vouching for it.
    await pastRacyWindow(src)
    const r = await restoreSnapshot(repo, snap, {excludes: ['/same-size.txt'], force: true})
    expect(r.recorded).toBe(true)
    expect(await fsp.readFile(p, 'utf8')).toBe('BBBB')
    const next = await createSnapshot(repo, {source: src, program: 'test'})
    expect(next.manifest.summary.filesRead).toBe(1)
    const back = path.join(work, 'kept-back')
    await restoreSnapshot(repo, await snapshotCatalogEntry(repo, next.id), {target: back})
    expect(await fsp.readFile(path.join(back, 'same-size.txt'), 'utf8')).toBe('BBBB')
  })

  it('a restore with a warning keeps no record: nothing vouches for the tree it left', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip() // mounts ramfs
    const {src, repo, snap} = await setup('warned')
    const mnt = path.join(work, 'warned-ramfs')
    await fsp.mkdir(mnt)
    if (spawnSync('mount', ['-t', 'ramfs', 'ramfs', mnt]).status !== 0) ctx.skip()
    try {
      const out = path.join(mnt, 'out')
      expect((await restoreSnapshot(repo, snap, {target: out})).recorded).toBe(true)
      // ramfs has no xattrs: restoring a snapshot with one warns.
      await fsp.writeFile(path.join(src, 'b.txt'), 'bee again\n')
      expect(writeXattr(Buffer.from(path.join(src, 'd', 'c.bin')), Buffer.from('user.k'), Buffer.from('v'))).toBe('ok')
      const {id} = await createSnapshot(repo, {source: src, program: 'test'})
      const warned = await restoreSnapshot(repo, await snapshotCatalogEntry(repo, id), {target: out, overwrite: true})
      expect(warned.warnings.map((w) => w.kind)).toEqual(['xattr:user:unsupported'])
      expect(warned.recorded).toBeUndefined()
      // Neither the first restore's record nor one of this restore: the next snapshot reads every file.
      const next = await createSnapshot(repo, {source: out, program: 'test'})
      expect(next.manifest.summary.filesRead).toBe(5)
    } finally {
      spawnSync('umount', [mnt])
    }
  })

  it('keeps the newest 64 records of a repository, and clears a killed writer\'s temp file', async () => {
    const {repo, snap} = await setup('many')
    const first = path.join(work, 'many-0')
    await restoreSnapshot(repo, snap, {target: first})
    const dir = path.join(work, 'cache', 'records', repo.config.id)
    const [mine] = await fsp.readdir(dir)
    // 70 older records of other directories, oldest first, and a temp file of this directory's next record.
    for (let i = 0; i < 70; i++) {
      const p = path.join(dir, `${i.toString(16).padStart(64, '0')}`)
      await fsp.writeFile(p, 'x')
      await fsp.utimes(p, 1_000_000 + i, 1_000_000 + i)
    }
    const second = path.join(work, 'many-1')
    await restoreSnapshot(repo, snap, {target: second})
    const [other] = (await fsp.readdir(dir)).filter((n) => n !== mine && !/^0+[0-9a-f]{1,2}$/.test(n))
    await fsp.writeFile(path.join(dir, `${other}.tmp-dead`), 'partial')
    await restoreSnapshot(repo, snap, {target: second, overwrite: true})
    const names = await fsp.readdir(dir)
    expect(names).toHaveLength(64)
    expect(names).toContain(mine)
    expect(names).toContain(other)
    expect(names.some((n) => n.includes('.tmp-'))).toBe(false)
    // The oldest fakes went first.
    expect(names).not.toContain('0'.repeat(64))
    expect(names).toContain(`${'0'.repeat(62)}45`)
  })

  it('rolling back twice: the second restore hashes only what changed since the first', async () => {
    const {src, repo, snap} = await setup('twice')
    const want = await captureTree(src)
    const edit = async () => {
      await fsp.writeFile(path.join(src, 'b.txt'), 'changed\n')
      await fsp.appendFile(path.join(src, 'a.bin'), 'more')
    }
    await edit()
    const first = await restoreSnapshot(repo, snap, {})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(first.recorded).toBe(true)
    await edit()
    const second = await restoreSnapshot(repo, snap, {})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    // a.bin and b.txt changed; every other file the record vouches for is linked unread.
    expect(second.filesHashed).toBe(2)
    expect(second.filesReused).toBe(3)
  })
})
