// Delta restore: a restore over an existing tree (in place, or --target with overwrite) reuses
// what is already there, and a restore with seeds reads their chunks first. Every kind of edit is
// rolled back to an exact tree, and only the chunks no local file holds come from the repository.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {Chunker} from '../../src/core/chunker.js'
import {writeXattr} from '../../src/core/fsextra.js'
import {blake3} from '../../src/core/hash.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, type SnapshotRecord} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {BlobType} from '../../src/repo/pack.js'
import {buildTree, captureTree, diffTrees, pastRacyWindow, seededBytes, tempDir} from '../helpers/tree.js'

const AVG = 16 * 1024
/**
 * Bytes of other blobs read through: a batch reads across gaps of up to 64 KiB between the blobs
 * it needs (reader.ts RANGE_GAP), and how a snapshot lays chunks out in its packs varies (files
 * are archived in parallel), so the bound is loose: the point is that the rest was not read.
 */
const slack = (data: number) => Math.max(128 * 1024, data / 2)
let work: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-delta-'))
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

/** A snapshot of `src` in a repository of its own (packs laid out as by one snapshot, so reads through gaps stay small). */
async function snapshotOf(src: string): Promise<{repo: Repository; snap: SnapshotRecord}> {
  const repoDir = `${src}.repo`
  await initLocalRepository(repoDir, {now: Date.now(), avgChunkSize: AVG})
  const repo = await openLocalRepository(repoDir)
  const {id} = await createSnapshot(repo, {source: src, program: 'test'})
  const {snapshots} = await loadCatalog(repo)
  return {repo, snap: snapshots.find((s) => s.id === id)!}
}

/** A tree with files of every size class (random, so stored bytes are about raw bytes). */
async function makeSource(name: string): Promise<string> {
  const src = path.join(work, name)
  await fsp.mkdir(src)
  await buildTree(src, {
    'big.bin': seededBytes(2 * 1024 * 1024 + 123, 1),
    'grow.bin': seededBytes(1536 * 1024, 2),
    'shrink.bin': seededBytes(1200 * 1024, 3),
    'moved.bin': seededBytes(300 * 1024, 4),
    'gone.bin': seededBytes(40 * 1024, 5),
    'mode.bin': seededBytes(50 * 1024, 6),
    'same.txt': 'unchanged\n',
    'd': {dir: {'small.txt': seededBytes(3000, 7), 'e': {dir: {'deep.bin': seededBytes(200 * 1024, 8)}}}},
  })
  await fsp.symlink('big.bin', path.join(src, 'link'))
  return src
}

/** Every edit kind: content in the middle, append, truncate, rename, delete, mode only, and a new file. */
async function edit(src: string): Promise<void> {
  const fh = await fsp.open(path.join(src, 'big.bin'), 'r+')
  await fh.write(seededBytes(100, 99), 0, 100, 1024 * 1024)
  await fh.close()
  await fsp.appendFile(path.join(src, 'grow.bin'), seededBytes(5000, 98))
  await fsp.truncate(path.join(src, 'shrink.bin'), 500 * 1024)
  await fsp.rename(path.join(src, 'moved.bin'), path.join(src, 'd', 'moved-here.bin'))
  await fsp.rm(path.join(src, 'gone.bin'))
  await fsp.chmod(path.join(src, 'mode.bin'), 0o600)
  await fsp.writeFile(path.join(src, 'new.bin'), seededBytes(10_000, 97))
}

/** Chunk ids every regular file under `dir` holds, cut with the repository's chunker. */
async function localChunkIds(repo: Repository, dir: string): Promise<Set<string>> {
  const ids = new Set<string>()
  for (const e of await fsp.readdir(dir, {recursive: true, withFileTypes: true})) {
    if (!e.isFile()) continue
    const data = await fsp.readFile(path.join(e.parentPath, e.name))
    const c = new Chunker(repo.config.chunker)
    let start = 0
    for (let cut = c.next(data, 0); cut >= 0; cut = c.next(data, cut)) {
      ids.add(blake3(data.subarray(start, cut)).toString('hex'))
      start = cut
    }
    if (start < data.length) ids.add(blake3(data.subarray(start)).toString('hex'))
  }
  return ids
}

/** Stored bytes of the snapshot's trees, and of its chunks not in `have`. */
async function storedBeyond(repo: Repository, snap: SnapshotRecord, have: Set<string>): Promise<{trees: number; data: number}> {
  let trees = 0
  let data = 0
  const seen = new Set<string>()
  const walk = async (id: Buffer) => {
    trees += repo.lookup(id)!.storedLength
    for (const n of decodeTree(await repo.readBlob(id, BlobType.tree), id.toString('hex'))) {
      if (n.subtree) await walk(n.subtree)
      for (const c of n.chunks ?? []) {
        const hex = c.toString('hex')
        if (have.has(hex) || seen.has(hex)) continue
        seen.add(hex)
        data += repo.lookup(c)!.storedLength
      }
    }
  }
  await walk(Buffer.from(snap.manifest.tree, 'hex'))
  return {trees, data}
}

describe('delta restore', () => {
  it('in place: every kind of edit rolls back to the exact tree, reading only the chunks no local file holds', async () => {
    const src = await makeSource('inplace')
    const want = await captureTree(src)
    const deep = path.join(src, 'd', 'e', 'deep.bin')
    const ino = (await fsp.stat(deep)).ino
    const {repo, snap} = await snapshotOf(src)
    await edit(src)
    const expected = await storedBeyond(repo, snap, await localChunkIds(repo, src))
    const r = await restoreSnapshot(repo, snap, {keepOld: true})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    // Untouched: same.txt, d/small.txt, d/e/deep.bin; hashed equal: moved (renamed) and mode.bin.
    expect(r.filesReused).toBeGreaterThanOrEqual(5)
    expect(r.bytesFromRepository).toBeGreaterThanOrEqual(expected.trees + expected.data)
    expect(r.bytesFromRepository).toBeLessThanOrEqual(expected.trees + expected.data + slack(expected.data))
    expect(expected.data).toBeLessThan(900 * 1024) // mostly the 700 KiB truncated off: the rest was reused
    expect(r.bytesReused).toBeGreaterThan(4 * 1024 * 1024)
    // Nothing leaked into the old tree: the chmod'ed file there keeps its mode.
    expect((await fsp.stat(path.join(r.oldTree!, 'mode.bin'))).mode & 0o7777).toBe(0o600)
    // The kept old tree shares no inode with the new one: a write to one must not change the other.
    const inoKept = (await fsp.stat(path.join(r.oldTree!, 'd', 'e', 'deep.bin'))).ino
    expect(inoKept).toBe(ino)
    expect((await fsp.stat(deep)).ino).not.toBe(ino)
    // A second restore of the same snapshot (the old tree not kept) reads no data at all.
    const again = await restoreSnapshot(repo, snap, {})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(again.bytesFromRepository).toBe(expected.trees)
    // Every file is carried from the tree in place (copies now: none is the inode the snapshot read).
    expect(again.filesReused).toBeGreaterThanOrEqual(5)
  })

  it('--target with overwrite: the same, and --verify-existing hashes files it could have trusted', async () => {
    const src = await makeSource('ow-src')
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    const target = path.join(work, 'ow-target')
    await restoreSnapshot(repo, snap, {target})
    await edit(target)
    await expect(restoreSnapshot(repo, snap, {target})).rejects.toThrow(/--overwrite/)
    // The renamed file is not found here (no old file has the inode the snapshot recorded): its chunks come from the repository.
    const here = await localChunkIds(repo, target)
    const moved = path.join(work, 'ow-moved')
    await fsp.mkdir(moved)
    await fsp.copyFile(path.join(target, 'd', 'moved-here.bin'), path.join(moved, 'm'))
    for (const id of await localChunkIds(repo, moved)) here.delete(id)
    const expected = await storedBeyond(repo, snap, here)
    const r = await restoreSnapshot(repo, snap, {target, overwrite: true, verifyExisting: true})
    expect(diffTrees(want, await captureTree(target), {ignoreRootMtime: true})).toEqual([])
    expect(r.replaced).toBe(true)
    expect(r.filesReused).toBe(4)
    expect(r.bytesFromRepository).toBeGreaterThanOrEqual(expected.trees + expected.data)
    expect(r.bytesFromRepository).toBeLessThanOrEqual(expected.trees + expected.data + slack(expected.data))
  })

  it('--include with overwrite: the target becomes the included part, reused from what is there', async () => {
    const src = await makeSource('inc-src')
    const {repo, snap} = await snapshotOf(src)
    const target = path.join(work, 'inc-target')
    await restoreSnapshot(repo, snap, {target})
    const r = await restoreSnapshot(repo, snap, {target, overwrite: true, includes: ['d']})
    const got = await captureTree(target)
    const want = await captureTree(src)
    for (const k of got.keys()) if (k !== '') expect(got.get(k)).toEqual(want.get(k))
    expect([...got.keys()].map((k) => Buffer.from(k, 'hex').toString()).sort()).toEqual(['', 'd', 'd/e', 'd/e/deep.bin', 'd/small.txt'])
    expect(r.filesReused).toBe(2)
  })

  it('seeds: chunks come from the seed, checked; a seed rewritten after it was indexed is not trusted', async () => {
    const src = await makeSource('seed-src')
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    const seed = path.join(work, 'seed')
    await fsp.cp(src, seed, {recursive: true, verbatimSymlinks: true})
    const trees = (await storedBeyond(repo, snap, new Set())).trees

    await expect(restoreSnapshot(repo, snap, {target: path.join(work, 'seeded'), seeds: [path.join(work, 'no-such-seed')]})).rejects.toThrow(/--seed .* is not a directory/)
    const clean = await restoreSnapshot(repo, snap, {target: path.join(work, 'seeded'), seeds: [seed]})
    expect(diffTrees(want, await captureTree(path.join(work, 'seeded')), {ignoreRootMtime: true})).toEqual([])
    expect(clean.bytesFromRepository).toBe(trees)
    expect(clean.filesReused).toBe(0) // a fresh target has nothing to carry whole

    const out = path.join(work, 'seeded-rewritten')
    const r = await restoreSnapshot(repo, snap, {
      target: out, seeds: [seed],
      // Same size, other bytes: only the hash check can tell.
      afterIndex: () => fsp.writeFile(path.join(seed, 'big.bin'), seededBytes(2 * 1024 * 1024 + 123, 1234)),
    })
    expect(diffTrees(want, await captureTree(out), {ignoreRootMtime: true})).toEqual([])
    expect(r.bytesFromRepository).toBeGreaterThan(trees + 2 * 1024 * 1024)
  })
})

describe('delta restore with a snapshot of the tree it replaces', () => {
  it('old files that snapshot vouches for are not read; one changed since it is; the tree is exact either way', async () => {
    const src = await makeSource('known')
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    await edit(src)
    await pastRacyWindow(src)
    // What the safety snapshot would be: the edited tree, recorded.
    const now = await createSnapshot(repo, {source: src, program: 'test'})
    const vouched = await restoreSnapshot(repo, snap, {current: now.manifest, keepOld: true})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(vouched.filesHashed).toBe(0)
    expect(vouched.filesReused).toBeGreaterThanOrEqual(5)

    // The same rollback without it cuts and hashes every old file that is not the inode the snapshot read untouched.
    await fsp.rm(vouched.oldTree!, {recursive: true, force: true})
    await edit(src)
    await pastRacyWindow(src)
    const now2 = await createSnapshot(repo, {source: src, program: 'test'})
    const cut = await restoreSnapshot(repo, snap, {keepOld: true})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(cut.filesHashed).toBeGreaterThanOrEqual(5)

    // A file written after the snapshot that would vouch for it (same size, other bytes): read, and rebuilt exactly.
    await fsp.rm(cut.oldTree!, {recursive: true, force: true})
    await edit(src)
    await pastRacyWindow(src)
    const now3 = await createSnapshot(repo, {source: src, program: 'test'})
    await fsp.writeFile(path.join(src, 'big.bin'), seededBytes(2 * 1024 * 1024 + 123, 55))
    const after = await restoreSnapshot(repo, snap, {current: now3.manifest})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(after.filesHashed).toBe(1)
    expect(now2.id).not.toBe(now3.id)
  })
})

describe('delta restore: xattrs and flags of old files a snapshot recorded', () => {
  it('are taken from that record: a file whose ctime moved is linked when they match and copied with the node\'s when they do not', async () => {
    const src = path.join(work, 'attrs')
    await fsp.mkdir(src)
    await buildTree(src, {
      'tagged.bin': {file: seededBytes(200 * 1024, 11), xattrs: {'user.k': 'v1'}},
      'moded.bin': {file: seededBytes(200 * 1024, 12), xattrs: {'user.k': 'same'}},
    })
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    // Each moves only its ctime: one to other xattrs (same bytes), one to the same mode again.
    expect(writeXattr(Buffer.from(path.join(src, 'tagged.bin')), Buffer.from('user.k'), Buffer.from('v2'))).toBe('ok')
    await fsp.chmod(path.join(src, 'moded.bin'), 0o600)
    await fsp.chmod(path.join(src, 'moded.bin'), want.get(Buffer.from('moded.bin').toString('hex'))!.mode)
    const before = {tagged: (await fsp.stat(path.join(src, 'tagged.bin'))).ino, moded: (await fsp.stat(path.join(src, 'moded.bin'))).ino}
    await pastRacyWindow(src)
    const now = await createSnapshot(repo, {source: src, program: 'test'})
    const r = await restoreSnapshot(repo, snap, {current: now.manifest})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(r.filesHashed).toBe(0)
    expect(r.filesReused).toBe(2)
    // Linked (the same inode) where the record says its xattrs are the node's; a new inode where they are not.
    expect((await fsp.stat(path.join(src, 'moded.bin'))).ino).toBe(before.moded)
    expect((await fsp.stat(path.join(src, 'tagged.bin'))).ino).not.toBe(before.tagged)
  })
})

describe('delta restore and the old tree', () => {
  it('never takes a file through a directory of the old tree replaced by a symlink', async () => {
    const src = await makeSource('symdir')
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    // d moves away and a symlink to it takes its place: d/e/deep.bin is the snapshot's inode, reachable only through the link.
    const away = path.join(work, 'symdir-away')
    await fsp.rename(path.join(src, 'd'), away)
    await fsp.symlink(away, path.join(src, 'd'))
    const r = await restoreSnapshot(repo, snap, {})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    const deep = await fsp.stat(path.join(src, 'd', 'e', 'deep.bin'))
    expect(deep.ino).not.toBe((await fsp.stat(path.join(away, 'e', 'deep.bin'))).ino)
    expect(r.filesReused).toBeGreaterThan(0)
  })
})

describe('delta restore of a sparse file', () => {
  it('carries the untouched sparse file whole, its holes with it, and rebuilds a changed one exactly', async () => {
    const src = path.join(work, 'sparse')
    await fsp.mkdir(src)
    for (const name of ['keep.img', 'edit.img']) {
      const fh = await fsp.open(path.join(src, name), 'w')
      await fh.write(seededBytes(4096, 3), 0, 4096, 5 * 1024 * 1024)
      await fh.truncate(16 * 1024 * 1024)
      await fh.close()
    }
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    const keepIno = (await fsp.stat(path.join(src, 'keep.img'))).ino
    const fh = await fsp.open(path.join(src, 'edit.img'), 'r+')
    await fh.write(Buffer.from('changed'), 0, 7, 5 * 1024 * 1024 + 10)
    await fh.close()
    const r = await restoreSnapshot(repo, snap, {})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    expect(r.filesReused).toBe(1)
    expect((await fsp.stat(path.join(src, 'keep.img'))).ino).toBe(keepIno)
    // The link keeps the holes (edit.img is as dense as the archiver of this tree recorded it).
    expect((await fsp.stat(path.join(src, 'keep.img'))).blocks * 512).toBeLessThan(1024 * 1024)
  })
})
