// The restore side of hard links and sparse files, from version-2 trees written by hand (the
// archiver's side is tested in test/snapshot/): names of one inode come back as links to one
// inode, also when --include picks some of them; a sparse file's holes come back as holes.
import {promises as fsp, statSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, resolveSnapshot} from '../../src/snapshot/catalog.js'
import {Crafter, dirNode, fileNode} from '../helpers/hostilerepo.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

let work: string
let repoDir: string
let snapId: string
const shared = seededBytes(300_000, 1)
const big = seededBytes(3 * MiB, 2)
const sparseA = seededBytes(64 * 1024, 3)
const sparseB = seededBytes(64 * 1024, 4)
const small = seededBytes(8192, 5)

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-links-holes-'))
  repoDir = path.join(work, 'repo')
  await initLocalRepository(repoDir, {now: Date.now()})
  const c = new Crafter(repoDir)
  const sharedId = await c.data(shared)
  const bigIds: Buffer[] = []
  for (let at = 0; at < big.length; at += 512 * 1024) bigIds.push(await c.data(big.subarray(at, at + 512 * 1024)))
  const holeIds = [await c.data(sparseA), await c.data(sparseB)]
  const smallId = await c.data(small)
  const link = {nlink: 3, dev: '2049', ino: '777'}
  const bigLink = {nlink: 2, dev: '2049', ino: '778'}
  const sub = await c.tree([
    fileNode('second', [sharedId], shared.length, link),
    fileNode('big-second', bigIds, big.length, bigLink),
    // Claims the inode of `first` but holds something else: not linked, restored as it says.
    fileNode('impostor', [smallId], small.length, link),
  ], {version: 2})
  const root = await c.tree([
    fileNode('first', [sharedId], shared.length, link),
    fileNode('third', [sharedId], shared.length, link),
    fileNode('big-first', bigIds, big.length, bigLink),
    dirNode('sub', sub),
    // 1 GiB apparent, 128 KiB of data: at 0 and at 512 MiB.
    fileNode('sparse', holeIds, GiB, {extents: [[0, sparseA.length], [512 * MiB, sparseB.length]]}),
    // Small and sparse, ending in a hole.
    fileNode('sparse-small', [smallId], 200_000, {extents: [[65536, small.length]]}),
  ], {version: 2})
  await c.flush()
  snapId = await c.manifest(root, {version: 1})
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function restore(target: string, includes?: string[]) {
  const repo = await openLocalRepository(repoDir)
  const {snapshots} = await loadCatalog(repo)
  return restoreSnapshot(repo, resolveSnapshot(snapshots, snapId), {target, includes})
}

describe('hard links', () => {
  test('names of one inode are restored as links to one inode, across directories', async () => {
    const out = path.join(work, 'full')
    await restore(out)
    const names = ['first', 'third', 'sub/second'].map((n) => statSync(path.join(out, n)))
    expect(names.map((s) => s.nlink)).toEqual([3, 3, 3])
    expect(new Set(names.map((s) => s.ino)).size).toBe(1)
    expect((await fsp.readFile(path.join(out, 'sub/second'))).equals(shared)).toBe(true)
    const bigs = ['big-first', 'sub/big-second'].map((n) => statSync(path.join(out, n)))
    expect(bigs.map((s) => s.nlink)).toEqual([2, 2])
    expect(bigs[0]!.ino).toBe(bigs[1]!.ino)
    expect((await fsp.readFile(path.join(out, 'sub/big-second'))).equals(big)).toBe(true)
    const impostor = statSync(path.join(out, 'sub/impostor'))
    expect(impostor.nlink).toBe(1)
    expect((await fsp.readFile(path.join(out, 'sub/impostor'))).equals(small)).toBe(true)
  })

  test('--include of some of the names links those', async () => {
    const out = path.join(work, 'some')
    await restore(out, ['third', 'sub/second'])
    const a = statSync(path.join(out, 'third'))
    const b = statSync(path.join(out, 'sub/second'))
    expect([a.nlink, b.nlink]).toEqual([2, 2])
    expect(a.ino).toBe(b.ino)
    await expect(fsp.access(path.join(out, 'first'))).rejects.toThrow()
  })

  test('--include of one name restores a plain file', async () => {
    const out = path.join(work, 'one')
    await restore(out, ['sub/second'])
    expect(statSync(path.join(out, 'sub/second')).nlink).toBe(1)
    expect((await fsp.readFile(path.join(out, 'sub/second'))).equals(shared)).toBe(true)
  })
})

describe('sparse files', () => {
  test('holes come back as holes, data at its offsets', async () => {
    const out = path.join(work, 'holes')
    await restore(out)
    const st = statSync(path.join(out, 'sparse'))
    expect(st.size).toBe(GiB)
    // 128 KiB of data: allocation within a few blocks of that, not 1 GiB.
    expect(st.blocks * 512).toBeLessThan(1 * MiB)
    const fh = await fsp.open(path.join(out, 'sparse'), 'r')
    try {
      const at = async (offset: number, length: number) => {
        const buf = Buffer.alloc(length)
        await fh.read(buf, 0, length, offset)
        return buf
      }
      expect((await at(0, sparseA.length)).equals(sparseA)).toBe(true)
      expect((await at(512 * MiB, sparseB.length)).equals(sparseB)).toBe(true)
      expect((await at(sparseA.length, 4096)).equals(Buffer.alloc(4096))).toBe(true)
      expect((await at(GiB - 4096, 4096)).equals(Buffer.alloc(4096))).toBe(true)
    } finally {
      await fh.close()
    }
    const smallOut = await fsp.readFile(path.join(out, 'sparse-small'))
    expect(smallOut.length).toBe(200_000)
    expect(smallOut.subarray(0, 65536).equals(Buffer.alloc(65536))).toBe(true)
    expect(smallOut.subarray(65536, 65536 + small.length).equals(small)).toBe(true)
    expect(smallOut.subarray(65536 + small.length).equals(Buffer.alloc(200_000 - 65536 - small.length))).toBe(true)
  })
})
