// Restoring a tree (reader.ts, fsout.ts): small files restored in batches across directories (blobs read a pack range at
// a time, shared blobs read once), large files in lanes beside them, directory metadata set once
// a directory is complete; and a damaged blob anywhere stops everything and leaves nothing behind.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {BlobType} from '../../src/repo/pack.js'
import {type RestoreProgress, restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, resolveSnapshot} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {awkwardSpec, buildTree, type Captured, captureTree, diffTrees, seededBytes, tempDir, type TreeSpec} from '../helpers/tree.js'

let work: string
let repoDir: string
let src: string
let snapId: string
let want: Map<string, Captured>

const text = (seed: number, size: number): Buffer => Buffer.from(`line ${seed} of a log that compresses well\n`.repeat(Math.ceil(size / 30))).subarray(0, size)

/** 30 directories of small files (text that compresses, random bytes that do not, one file shared by all), large files, links, a read-only directory. */
function spec(): TreeSpec {
  const tree: TreeSpec = {}
  for (let d = 0; d < 30; d++) {
    const dir: TreeSpec = {'same.txt': 'the same in every directory\n', ...(d % 3 === 0 ? {empty: ''} : {})}
    for (let f = 0; f < 12; f++) {
      const size = 500 + ((d * 12 + f) * 977) % 20_000
      dir[`f${f}`] = f % 2 ? seededBytes(size, d * 100 + f + 1) : text(d * 100 + f, size)
    }
    tree[`d${String(d).padStart(2, '0')}`] = {dir: d % 7 === 0 ? {deeper: {dir}} : dir, mode: d === 4 ? 0o700 : 0o755}
  }
  tree.big = {dir: {
    'rand.bin': {file: {random: 2_500_000, seed: 5}},
    'zeros.bin': Buffer.alloc(3 * 1024 * 1024),
    'text.log': text(1, 1_500_000),
    'mixed.bin': Buffer.concat([seededBytes(1_100_000, 8), text(2, 1_000_000)]),
  }}
  tree.ro = {dir: {'a.txt': 'in a read-only dir', sub: {dir: {'b.txt': 'below it'}}, 'c.bin': seededBytes(5000, 3)}, mode: 0o555}
  tree['link-rel'] = {symlink: 'd01/f1'}
  tree['link-dangling'] = {symlink: 'nowhere/at/all'}
  Object.assign(tree, awkwardSpec())
  return tree
}

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-treewriter-'))
  repoDir = path.join(work, 'repo')
  src = path.join(work, 'src')
  await fsp.mkdir(src)
  await buildTree(src, spec())
  // The smallest packs: a batch's blobs come from several packs.
  await initLocalRepository(repoDir, {now: Date.now(), packSize: 1024 * 1024})
  snapId = (await createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'test'})).id
  want = await captureTree(src)
})

afterAll(async () => {
  removeTree(work) // deeper than PATH_MAX, and immutable files: fs.rm fails on both
})

async function restore(target: string, onProgress?: (p: RestoreProgress) => void) {
  const repo = await openLocalRepository(repoDir)
  const {snapshots} = await loadCatalog(repo)
  return restoreSnapshot(repo, resolveSnapshot(snapshots, snapId), {target, onProgress})
}

/** Flip one byte of `id`'s stored bytes in its pack; returns a function that puts it back. */
async function damage(id: Buffer, at = 10): Promise<() => Promise<void>> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const loc = repo.lookup(id)!
  expect(loc).toBeDefined()
  const file = path.join(repoDir, 'data', loc.pack.slice(0, 2), loc.pack)
  const bytes = await fsp.readFile(file)
  const original = Buffer.from(bytes)
  bytes[loc.offset + Math.min(at, loc.storedLength - 1)]! ^= 0x10
  await fsp.chmod(file, 0o644)
  await fsp.writeFile(file, bytes)
  return () => fsp.writeFile(file, original)
}

async function leftovers(target: string): Promise<string[]> {
  return (await fsp.readdir(path.dirname(target))).filter((n) => n.startsWith(`.${path.basename(target)}.ckpt-restore-`))
}

describe('restoring a tree of many small files and a few large ones', () => {
  it('brings back every byte, mode, owner, time and link, and reports every file', async () => {
    const target = path.join(work, 'out-whole')
    const seen: RestoreProgress[] = []
    const result = await restore(target, (p) => seen.push(p))
    expect(diffTrees(want, await captureTree(target), {ignoreRootMtime: true})).toEqual([])
    const kinds = [...want.entries()].filter(([k]) => k !== '').map(([, c]) => c.type)
    expect(result.files).toBe(kinds.filter((t) => t === 'file').length)
    expect(result.dirs).toBe(kinds.filter((t) => t === 'dir').length)
    expect(result.symlinks).toBe(2)
    // Data written: each hard-linked inode once, the sparse file's data regions only.
    const dataOf = (k: string, size: number) => (Buffer.from(k, 'hex').toString() === 'sparse.img' ? 4096 + 65536 : size)
    expect(result.bytes).toBe([...want.entries()].reduce((n, [k, c]) => n + (c.type === 'file' && c.link === k ? dataOf(k, c.size!) : 0), 0))
    expect(result.hardLinks).toBe(process.getuid?.() === 0 ? 4 : 3)
    expect(seen.at(-1)).toMatchObject({bytes: result.bytes})
    expect(await leftovers(target)).toEqual([])
  })

  it('reports progress inside large files, run by run, never going back', async () => {
    const events: RestoreProgress[] = []
    const r = await restore(path.join(work, 'progress'), (p) => events.push({...p}))
    const bytes = events.map((e) => e.bytes)
    expect(bytes.every((b, i) => i === 0 || b >= bytes[i - 1]!)).toBe(true)
    expect(Math.max(...bytes)).toBe(r.bytes)
    // 3 MiB of zeros is three runs of 1 MiB: progress moves while it is written, not only once it is done.
    const zeros = events.filter((e) => e.path === 'big/zeros.bin').map((e) => e.bytes)
    expect(new Set(zeros).size).toBeGreaterThanOrEqual(3)
  })

  it('restores part of the tree with includes that pass through batched directories', async () => {
    const target = path.join(work, 'out-part')
    const repo = await openLocalRepository(repoDir)
    const {snapshots} = await loadCatalog(repo)
    await restoreSnapshot(repo, resolveSnapshot(snapshots, snapId), {target, includes: ['d07/deeper', 'd08/f3', 'big/zeros.bin']})
    const names = [...(await captureTree(target)).keys()].map((k) => Buffer.from(k, 'hex').toString()).sort()
    const d07 = [...want.keys()].map((k) => Buffer.from(k, 'hex').toString()).filter((n) => n.startsWith('d07/'))
    expect(names).toEqual(['', 'big', 'big/zeros.bin', 'd07', ...d07, 'd08', 'd08/f3'].sort())
  })
})

describe('a damaged blob stops the restore and leaves nothing behind', () => {
  const cases: [string, () => Buffer][] = [
    ['a small file stored as is', () => seededBytes(500 + ((5 * 12 + 1) * 977) % 20_000, 5 * 100 + 1 + 1)],
    ['a compressed small file', () => text(9 * 100 + 4, 500 + ((9 * 12 + 4) * 977) % 20_000)],
  ]
  for (const [what, content] of cases) {
    it(`in ${what}`, async () => {
      const undo = await damage(blake3(content()))
      try {
        const target = path.join(work, `out-bad-${what.replace(/ /g, '-')}`)
        const err = await restore(target).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(IntegrityError)
        expect((err as Error).message).toMatch(/fails its BLAKE3 check|corrupt/)
        await expect(fsp.access(target)).rejects.toThrow()
        expect(await leftovers(target)).toEqual([])
      } finally {
        await undo()
      }
    })
  }

  it('in a chunk of a large file, while other files are being written', async () => {
    const repo = await openLocalRepository(repoDir)
    await repo.loadIndex()
    let victim: Buffer | undefined
    repo.index.forEach((id) => {
      const loc = repo.lookup(id)!
      if (!victim && loc.type === BlobType.data && loc.compression === 0 && loc.storedLength > 100_000) victim = Buffer.from(id)
    })
    const undo = await damage(victim!, 5000)
    try {
      const target = path.join(work, 'out-bad-large')
      await expect(restore(target)).rejects.toThrow(/fails its BLAKE3 check/)
      await expect(fsp.access(target)).rejects.toThrow()
      expect(await leftovers(target)).toEqual([])
    } finally {
      await undo()
    }
    // And once repaired, it restores.
    const again = path.join(work, 'out-repaired')
    await restore(again)
    expect(diffTrees(want, await captureTree(again), {ignoreRootMtime: true})).toEqual([])
  })
})

describe('a repository made with large chunks', () => {
  it('restores chunks larger than a run buffer', async () => {
    const dir = path.join(work, 'bigchunks')
    const repoBig = path.join(dir, 'repo')
    const from = path.join(dir, 'src')
    await fsp.mkdir(from, {recursive: true})
    await buildTree(from, {'model.bin': {file: {random: 20 * 1024 * 1024, seed: 77}}, 'small.txt': 'x'})
    // Chunks of 2 to 32 MiB (16 MiB packs hold one or two).
    await initLocalRepository(repoBig, {now: Date.now(), avgChunkSize: 8 * 1024 * 1024})
    const repo = await openLocalRepository(repoBig)
    const {id} = await createSnapshot(repo, {source: from, program: 'test'})
    await repo.loadIndex()
    const sizes: number[] = []
    repo.index.forEach((blob) => {
      const loc = repo.lookup(blob)!
      if (loc.type === BlobType.data) sizes.push(loc.storedLength)
    })
    expect(Math.max(...sizes)).toBeGreaterThan(4 * 1024 * 1024)
    const target = path.join(dir, 'out')
    const {snapshots} = await loadCatalog(repo)
    await restoreSnapshot(repo, resolveSnapshot(snapshots, id), {target})
    expect(diffTrees(await captureTree(from), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
  })
})
