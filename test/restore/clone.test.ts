// Delta restore on a filesystem that shares extents (an XFS loop image made with reflink=1): a
// changed large file starts as a clone of its old version, and only the ranges where it differs
// are written (local.ts, "Can the changed file start as a clone"). The result is exact, the
// clone shares the old file's unchanged extents, and a base rewritten between its hash and its
// clone is not trusted.
import {spawnSync} from 'node:child_process'
import {promises as fsp, statSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {LocalChunks} from '../../src/restore/local.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog, type SnapshotRecord} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {runCli} from '../helpers/cli.js'
import {runStopped} from '../helpers/crash.js'
import {buildTree, captureTree, diffTrees, pastRacyWindow, seededBytes, tempDir} from '../helpers/tree.js'

const MiB = 1024 * 1024
let work: string
let mnt: string | undefined
let why = ''

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-clone-'))
  if (process.getuid?.() !== 0) return void (why = 'mounting an XFS image needs root')
  if (spawnSync('mkfs.xfs', ['-V']).status !== 0) return void (why = 'mkfs.xfs is not installed (xfsprogs)')
  const image = path.join(work, 'xfs.img')
  spawnSync('truncate', ['-s', '400M', image])
  const made = spawnSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image], {encoding: 'utf8'})
  if (made.status !== 0) return void (why = `mkfs.xfs -m reflink=1 failed: ${made.stderr.trim()}`)
  const dir = path.join(work, 'xfs')
  await fsp.mkdir(dir)
  const mounted = spawnSync('mount', ['-o', 'loop', image, dir], {encoding: 'utf8'})
  if (mounted.status !== 0) return void (why = `this machine refuses a loop mount: ${mounted.stderr.trim()}`)
  mnt = dir
})

afterAll(async () => {
  if (mnt) spawnSync('umount', [mnt])
  await fsp.rm(work, {recursive: true, force: true})
})

/** Whether some extent of the file is shared with another file (FIEMAP's shared flag). */
function shared(file: string): boolean {
  const r = spawnSync('filefrag', ['-v', file], {encoding: 'utf8'})
  expect(r.status, r.stderr).toBe(0)
  return /\bshared\b/.test(r.stdout)
}

/** Large files of random bytes and a small one, in `under` (default: the XFS image). */
async function makeSource(name: string, under = mnt!): Promise<string> {
  const src = path.join(under, name)
  await fsp.mkdir(src)
  await buildTree(src, {
    'over.bin': seededBytes(8 * MiB, 1),
    'grow.bin': seededBytes(4 * MiB, 2),
    'cut.bin': seededBytes(6 * MiB, 3),
    'shift.bin': seededBytes(8 * MiB, 4),
    'same.bin': seededBytes(2 * MiB, 5),
    'small.txt': 'small\n',
  })
  return src
}

async function snapshotOf(src: string): Promise<{repo: Repository; snap: SnapshotRecord}> {
  const repoDir = `${src}.repo`
  await initLocalRepository(repoDir, {now: Date.now(), avgChunkSize: 64 * 1024})
  const repo = await openLocalRepository(repoDir)
  const {id} = await createSnapshot(repo, {source: src, program: 'test'})
  const {snapshots} = await loadCatalog(repo)
  return {repo, snap: snapshots.find((s) => s.id === id)!}
}

async function writeAt(file: string, data: Buffer, at: number): Promise<void> {
  const fh = await fsp.open(file, 'r+')
  await fh.write(data, 0, data.length, at)
  await fh.close()
}

describe('delta restore on a filesystem with shared extents', () => {
  it('an overwrite, an append, a truncation and an insert roll back as clones of the old files, only what differs written', async (ctx) => {
    if (!mnt) ctx.skip(why)
    const src = await makeSource('edits')
    const want = await captureTree(src)
    const {repo, snap} = await snapshotOf(src)
    await writeAt(path.join(src, 'over.bin'), seededBytes(100, 9), 4 * MiB)
    await fsp.appendFile(path.join(src, 'grow.bin'), seededBytes(5000, 8))
    await fsp.truncate(path.join(src, 'cut.bin'), 5 * MiB)
    // 100 bytes inserted at 6 MiB: the last 2 MiB move, so they are written again (from the old file's chunks).
    const old = await fsp.readFile(path.join(src, 'shift.bin'))
    await fsp.writeFile(path.join(src, 'shift.bin'), Buffer.concat([old.subarray(0, 6 * MiB), seededBytes(100, 7), old.subarray(6 * MiB)]))
    await pastRacyWindow(src)

    const r = await restoreSnapshot(repo, snap, {keepOld: true})
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
    // Kept, so the clones still share their unchanged extents with the old files.
    for (const f of ['over.bin', 'grow.bin', 'shift.bin']) expect(shared(path.join(src, f)), f).toBe(true)
    // From the repository: the trees, the chunk around the overwrite, grow.bin's last chunk and cut.bin's lost megabyte.
    expect(r.bytesFromRepository).toBeLessThan(2 * MiB)
    expect(r.bytesReused).toBeGreaterThan(25 * MiB)
    // The old tree is as it was left.
    expect(statSync(path.join(r.oldTree!, 'grow.bin')).size).toBe(4 * MiB + 5000)
    expect((await fsp.readFile(path.join(r.oldTree!, 'over.bin'))).subarray(4 * MiB, 4 * MiB + 100)).toEqual(seededBytes(100, 9))
  })

  it('a base rewritten between its hash and its clone is not trusted: the file is written from checked chunks', async (ctx) => {
    if (!mnt) ctx.skip(why)
    const src = await makeSource('rewritten')
    const repo = `${src}.repo`
    expect((await runCli(['init', '-q', '--repo', repo])).code).toBe(0)
    const snap = await runCli(['snapshot', src, '--json', '--repo', repo])
    expect(snap.code, snap.stderr).toBe(0)
    const id = (JSON.parse(snap.stdout) as {id: string}).id
    const want = await captureTree(src)
    await writeAt(path.join(src, 'over.bin'), seededBytes(100, 9), 4 * MiB)
    await pastRacyWindow(src)
    const r = await runStopped(['restore', id, '--no-safety-snapshot', '--json', '--repo', repo], 'restore.clone', async () => {
      // Same size, other bytes everywhere: a clone taken now holds none of the hashed chunks.
      await fsp.writeFile(path.join(src, 'over.bin'), seededBytes(8 * MiB + 0, 77))
    })
    expect(r.stopped).toBe(true)
    expect(r.code, r.stderr).toBe(0)
    expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
  })
})

describe('which old files may be cloned (LocalChunks.baseOf)', () => {
  it('a changed file is a base only when its last write is older than the racy window before its hash', async () => {
    const src = await makeSource('racy', work)
    const {repo, snap} = await snapshotOf(src)
    const node = decodeTree(await repo.readBlob(Buffer.from(snap.manifest.tree, 'hex'), BlobType.tree), snap.manifest.tree).find((n) => n.name.toString() === 'over.bin')!
    await writeAt(path.join(src, 'over.bin'), seededBytes(100, 9), 4 * MiB)
    const rel = Buffer.from('over.bin')
    const old = {root: Buffer.from(src), dev: statSync(src, {bigint: true}).dev}
    const ask = async (racyNs?: bigint) => {
      const local = new LocalChunks({chunker: repo.config.chunker, old, racyNs})
      try {
        expect(await local.wholeFile(node, rel)).toBeUndefined()
        return local.baseOf(rel)
      } finally {
        await local.close()
      }
    }
    // Written within the window (an hour): its stat cannot vouch for its bytes.
    expect(await ask(3600n * 1_000_000_000n)).toBeUndefined()
    await pastRacyWindow(src)
    const base = await ask()
    expect(base).toBeDefined()
    // It holds the snapshot's first chunk where the snapshot has it, not at another offset, and not the edited one.
    const first = node.chunks![0]!
    const firstLength = (await repo.readBlob(first, BlobType.data)).length
    expect(base!.holds(0, first, firstLength)).toBe(true)
    expect(base!.holds(firstLength, first, firstLength)).toBe(false)
    expect(base!.holds(0, node.chunks![1]!, firstLength)).toBe(false)
  })
})
