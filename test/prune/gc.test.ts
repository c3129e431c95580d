// Garbage collection, in process: what is deleted, repacked, kept, rebuilt, and what makes prune
// refuse to delete anything. Every test ends with `ckpt verify --read-data` and restores.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, describe, expect, test} from 'vitest'

import {IntegrityError, LockedError} from '../../src/core/errors.js'
import {encodeBlob} from '../../src/core/codec.js'
import {blake3} from '../../src/core/hash.js'
import {openLocalRepository} from '../../src/repo/open.js'
import {encodePackTail} from '../../src/repo/pack.js'
import {pinSnapshot} from '../../src/prune/pins.js'
import {RepositoryLock} from '../../src/store/lock.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {type Captured, captureTree, diffTrees, seededBytes} from '../helpers/tree.js'
import {type Fixture, fixture, names, prune, restoreAllMatches, snap, verifyClean} from './helpers.js'

let f: Fixture
afterEach(async () => {
  await f?.cleanup()
})

const KB = 1024

async function write(file: string, bytes: Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(file), {recursive: true})
  await fsp.writeFile(file, bytes)
}

/** Two snapshots: A holds big (seed 1) and keep (seed 3); B holds big (seed 2) and keep. */
/** Every indexed blob's stored bytes, compression and pack. */
async function storedBlobs(repoDir: string): Promise<Map<string, {bytes: Buffer; compression: number; pack: string}>> {
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  const ids: Buffer[] = []
  repo.index.forEach((id) => ids.push(Buffer.from(id)))
  const out = new Map<string, {bytes: Buffer; compression: number; pack: string}>()
  for (const id of ids) {
    const loc = repo.lookup(id)!
    out.set(id.toString('hex'), {bytes: await repo.backend.get('data', loc.pack, {offset: loc.offset, length: loc.storedLength}), compression: loc.compression, pack: loc.pack})
  }
  return out
}

async function twoSnapshots(bigSize = 300 * KB): Promise<{a: string; b: string; captured: Map<string, Map<string, Captured>>}> {
  const captured = new Map<string, Map<string, Captured>>()
  await write(path.join(f.src, 'big'), seededBytes(bigSize, 1))
  await write(path.join(f.src, 'keep'), seededBytes(30 * KB, 3))
  const a = await snap(f, {time: '2026-11-01T00:00:00Z'})
  captured.set(a, await captureTree(f.src))
  await write(path.join(f.src, 'big'), seededBytes(bigSize, 2))
  const b = await snap(f, {time: '2026-11-02T00:00:00Z'})
  captured.set(b, await captureTree(f.src))
  return {a, b, captured}
}

describe('garbage collection', () => {
  test('a pack with no live data is deleted, the index is rewritten, and a second prune does nothing', async () => {
    f = await fixture()
    await write(path.join(f.src, 'x'), seededBytes(200 * KB, 1))
    const a = await snap(f, {time: '2026-11-01T00:00:00Z'})
    await write(path.join(f.src, 'x'), seededBytes(200 * KB, 2))
    const b = await snap(f, {time: '2026-11-02T00:00:00Z'})
    const captured = new Map([[b, await captureTree(f.src)]])
    const packsBefore = await names(f, 'data')
    expect(packsBefore).toHaveLength(2)

    const r = await prune(f, {policy: {last: 1}})
    expect(r.removed).toEqual([a])
    expect(r.plan.packs).toMatchObject({total: 2, keep: 1, delete: 1, repack: 0})
    expect(r.plan.changes.map((c) => [c.action, c.reason])).toEqual([['delete', 'no live data']])
    expect(r.result).toMatchObject({snapshotsRemoved: 1, packsDeleted: 1, packsWritten: 0, attempts: 1})
    expect(r.result!.bytesFreed).toBe(r.plan.bytes.delete)
    expect(await names(f, 'snapshots')).toEqual([b])
    expect(await names(f, 'data')).toHaveLength(1)
    expect(await names(f, 'index')).toHaveLength(1)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(1)

    const again = await prune(f, {policy: {last: 1}})
    expect(again.plan.indexFiles.rewrite).toBe(false)
    expect(again.plan.changes).toEqual([])
    expect(again.result).toMatchObject({snapshotsRemoved: 0, packsDeleted: 0, packsWritten: 0, bytesFreed: 0, indexFilesDeleted: 0, indexFilesWritten: 0})
  })

  test('a mostly dead pack is repacked: live blobs copied first, then the old pack deleted', async () => {
    f = await fixture()
    const {b, captured} = await twoSnapshots()
    const storedBefore = await storedBlobs(f.repoDir)
    const r = await prune(f, {policy: {last: 1}})
    expect(r.plan.packs).toMatchObject({total: 2, keep: 1, repack: 1, delete: 0})
    const change = r.plan.changes[0]!
    // The live blobs moved as they were stored: the same frames, not inflated and compressed again.
    const storedAfter = await storedBlobs(f.repoDir)
    let moved = 0
    for (const [id, after] of storedAfter) {
      const before = storedBefore.get(id)!
      expect(after.bytes.equals(before.bytes)).toBe(true)
      expect(after.compression).toBe(before.compression)
      if (after.pack !== before.pack) moved++
    }
    expect(moved).toBe(change.liveBlobs)
    expect([...storedAfter.values()].some((s) => s.compression === 1)).toBe(true)
    expect(change.action).toBe('repack')
    expect(change.reason).toMatch(/^\d+% dead$/)
    expect(r.result!.packsWritten).toBe(1)
    expect(r.result!.blobsCopied).toBe(change.liveBlobs)
    expect(r.result!.packsDeleted).toBe(1)
    expect(r.result!.bytesFreed).toBeGreaterThan(250 * KB)
    expect(await names(f, 'data')).not.toContain(change.name)
    await verifyClean(f.repoDir)
    captured.delete([...captured.keys()].find((id) => id !== b)!)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(1)
  })

  test('below the repack threshold a pack is kept as it is', async () => {
    f = await fixture()
    await twoSnapshots()
    const before = await names(f, 'data')
    const r = await prune(f, {policy: {last: 1}, repackThreshold: 0.99})
    expect(r.plan.packs).toMatchObject({keep: 2, repack: 0, delete: 0})
    expect(r.result).toMatchObject({snapshotsRemoved: 1, packsDeleted: 0, packsWritten: 0})
    expect(await names(f, 'data')).toEqual(before)
    await verifyClean(f.repoDir)
  })

  test('small packs are merged into one, and the merged pack is left alone next time', async () => {
    f = await fixture()
    const captured = new Map()
    for (let i = 0; i < 5; i++) {
      await write(path.join(f.src, `f${i}`), seededBytes(20 * KB, 10 + i))
      const id = await snap(f, {time: `2026-11-0${i + 1}T00:00:00Z`})
      captured.set(id, await captureTree(f.src))
    }
    expect(await names(f, 'data')).toHaveLength(5)
    const r = await prune(f, {policy: {last: 10}, mergeSmall: true})
    expect(r.removed).toEqual([])
    expect(r.plan.packs.repack).toBe(5)
    expect(r.plan.changes.every((c) => c.reason === 'small pack, merged')).toBe(true)
    expect(await names(f, 'data')).toHaveLength(1)
    expect(await names(f, 'index')).toHaveLength(1)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(5)
    const again = await prune(f, {policy: {last: 10}, mergeSmall: true})
    expect(again.plan.changes).toEqual([])
    expect(again.result!.packsWritten).toBe(0)
  })

  test('a lone small pack joins a repack, so the repack\'s small last pack does not leave two behind', async () => {
    f = await fixture({packSize: 1024 * 1024})
    await write(path.join(f.src, 'keep'), seededBytes(150 * KB, 31))
    await write(path.join(f.src, 'big'), seededBytes(550 * KB, 32))
    await snap(f, {time: '2026-11-01T00:00:00Z'})
    await fsp.rm(path.join(f.src, 'big'))
    await write(path.join(f.src, 'new'), seededBytes(90 * KB, 33))
    const kept = await snap(f, {time: '2026-11-02T00:00:00Z'})
    const want = await captureTree(f.src)
    expect(await names(f, 'data')).toHaveLength(2)
    const r = await prune(f, {policy: {last: 1}, repackThreshold: 0.5, mergeSmall: true})
    expect(r.plan.changes.map((c) => c.reason).sort()).toEqual([expect.stringMatching(/^\d+% dead$/), 'small pack, merged'])
    expect(await names(f, 'data')).toHaveLength(1)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, new Map([[kept, want]]), f.root)).toBe(1)
    const again = await prune(f, {policy: {last: 1}, repackThreshold: 0.5, mergeSmall: true})
    expect(again.plan.changes).toEqual([])
  })

  test('many index files are consolidated even when no pack changes', async () => {
    f = await fixture()
    for (let i = 0; i < 18; i++) {
      await write(path.join(f.src, `f${i}`), seededBytes(2 * KB, 100 + i))
      await snap(f, {time: `2026-11-01T00:${String(i).padStart(2, '0')}:00Z`})
    }
    expect(await names(f, 'index')).toHaveLength(18)
    const r = await prune(f, {policy: {last: 100}})
    expect(r.plan.indexFiles).toMatchObject({total: 18, rewrite: true})
    expect(r.result).toMatchObject({packsDeleted: 0, indexFilesDeleted: 18, indexFilesWritten: 1})
    expect(await names(f, 'index')).toHaveLength(1)
    await verifyClean(f.repoDir)
  })

  test('a pack no index lists (a crashed snapshot) is read from its header and deleted', async () => {
    f = await fixture()
    await twoSnapshots()
    const repo = await f.open()
    const plain = seededBytes(10 * KB, 77)
    const blob = await encodeBlob(plain, 3)
    const orphan = 'ab'.repeat(32)
    await repo.backend.put('data', orphan, [blob.data, encodePackTail([{id: blake3(plain), type: 0, compression: blob.compression, offset: 0, storedLength: blob.data.length, rawLength: plain.length}])])
    const r = await prune(f, {policy: {last: 10}})
    expect(r.plan.packs.unindexed).toBe(1)
    expect(r.plan.changes).toEqual([expect.objectContaining({name: orphan, action: 'delete', reason: 'no live data (no index listed it)'})])
    expect(await names(f, 'data')).not.toContain(orphan)
    await verifyClean(f.repoDir)
  })

  test('a pack no index lists whose header is unreadable is deleted when nothing needs it', async () => {
    f = await fixture()
    await twoSnapshots()
    const repo = await f.open()
    const junk = 'cd'.repeat(32)
    await repo.backend.put('data', junk, seededBytes(5000, 5))
    const r = await prune(f, {policy: {last: 10}})
    expect(r.plan.packs.unreadable).toBe(1)
    expect(await names(f, 'data')).not.toContain(junk)
    await verifyClean(f.repoDir)
  })

  test('a damaged index file is rebuilt from the pack headers', async () => {
    f = await fixture()
    const {captured} = await twoSnapshots()
    const [first] = await names(f, 'index')
    const file = path.join(f.repoDir, 'index', first!)
    const bytes = await fsp.readFile(file)
    bytes[bytes.length - 1]! ^= 0xff
    await fsp.chmod(file, 0o644)
    await fsp.writeFile(file, bytes)
    const r = await prune(f, {policy: {last: 10}})
    expect(r.plan.indexFiles.damaged).toEqual([first])
    expect(r.warnings).toEqual([expect.stringContaining(`index file ${first} is damaged`)])
    expect(r.plan.packs.unindexed).toBe(1)
    expect(await names(f, 'index')).not.toContain(first)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(2)
  })

  test('index entries of a pack that is gone are dropped when nothing needs them', async () => {
    f = await fixture()
    await write(path.join(f.src, 'x'), seededBytes(100 * KB, 1))
    const a = await snap(f, {time: '2026-11-01T00:00:00Z'})
    const packA = (await names(f, 'data'))[0]!
    await write(path.join(f.src, 'x'), seededBytes(100 * KB, 2))
    await snap(f, {time: '2026-11-02T00:00:00Z'})
    await (await f.open()).deleteSnapshot(a)
    await fsp.rm(path.join(f.repoDir, 'data', packA.slice(0, 2), packA))
    const r = await prune(f, {policy: {last: 1}})
    expect(r.plan.packs.missing).toBe(1)
    expect(r.plan.changes).toEqual([expect.objectContaining({name: packA, action: 'missing'})])
    await verifyClean(f.repoDir)
  })

  test('stale temp files are removed, fresh ones are not', async () => {
    f = await fixture()
    await twoSnapshots()
    const old = path.join(f.repoDir, 'data', 'ab', '.tmp-0123456789abcdef')
    const fresh = path.join(f.repoDir, 'index', '.tmp-fedcba9876543210')
    await fsp.writeFile(old, 'x')
    await fsp.writeFile(fresh, 'y')
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000
    await fsp.utimes(old, twoDaysAgo, twoDaysAgo)
    const r = await prune(f, {policy: {last: 10}})
    expect(r.result!.tempFilesRemoved).toBe(1)
    await expect(fsp.stat(old)).rejects.toThrow()
    await fsp.stat(fresh)
  })

  test('--dry-run changes nothing and reports the same plan a real run carries out', async () => {
    f = await fixture()
    await twoSnapshots()
    const listing = async () => [await names(f, 'data'), await names(f, 'index'), await names(f, 'snapshots')]
    const before = await listing()
    const dry = await prune(f, {policy: {last: 1}, dryRun: true})
    expect(dry.result).toBeNull()
    expect(await listing()).toEqual(before)
    const real = await prune(f, {policy: {last: 1}})
    expect(real.plan.changes).toEqual(dry.plan.changes)
    expect(real.removed).toEqual(dry.removed)
  })
})

describe('prune refuses to delete anything when the repository is damaged (exit 12)', () => {
  test('a kept snapshot needs a blob whose pack is gone', async () => {
    f = await fixture()
    await twoSnapshots()
    const repo = await f.open()
    await repo.loadIndex()
    const listing = async () => [await names(f, 'data'), await names(f, 'index'), await names(f, 'snapshots')]
    // Remove the pack holding the newest snapshot's root tree (every policy keeps the newest).
    const {snapshots} = await loadCatalog(repo)
    const victim = repo.lookup(Buffer.from(snapshots[snapshots.length - 1]!.manifest.tree, 'hex'))!.pack
    await fsp.rm(path.join(f.repoDir, 'data', victim.slice(0, 2), victim))
    const before = await listing()
    const err = await prune(f, {policy: {last: 1}}).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(IntegrityError)
    expect((err as IntegrityError).exitCode).toBe(12)
    expect((err as IntegrityError).message).toMatch(/prune deleted nothing/)
    expect(await listing()).toEqual(before)
  })

  test('a damaged manifest (its references are unknown)', async () => {
    f = await fixture()
    const {a} = await twoSnapshots()
    const file = path.join(f.repoDir, 'snapshots', a)
    await fsp.chmod(file, 0o644)
    await fsp.appendFile(file, 'x')
    const before = await names(f, 'data')
    const err = await prune(f, {policy: {last: 1}}).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(IntegrityError)
    expect((err as IntegrityError).data.problems).toEqual([expect.objectContaining({kind: 'damaged-manifest', snapshot: a})])
    expect(await names(f, 'data')).toEqual(before)
  })

  test('a corrupt live blob in a pack being repacked', async () => {
    f = await fixture()
    await twoSnapshots()
    const plan = await prune(f, {policy: {last: 1}, dryRun: true})
    const target = plan.plan.changes.find((c) => c.action === 'repack')!
    const file = path.join(f.repoDir, 'data', target.name.slice(0, 2), target.name)
    const bytes = await fsp.readFile(file)
    // Every blob of the pack lies before its header: flip a byte in each 1 KiB of blob data.
    for (let i = 0; i < target.size - 2000; i += 1024) bytes[i]! ^= 0x55
    await fsp.chmod(file, 0o644)
    await fsp.writeFile(file, bytes)
    const snapshots = await names(f, 'snapshots')
    const err = await prune(f, {policy: {last: 1}}).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(IntegrityError)
    expect(await names(f, 'snapshots')).toEqual(snapshots)
    await fsp.stat(file)
  })
})

describe('work done by others between the plan and the commit', () => {
  /** Run prune while the test holds a shared lock; `meanwhile` runs once prune waits for its exclusive lock. */
  async function pruneWithInterlude(opts: Parameters<typeof prune>[1], meanwhile: () => Promise<void>) {
    const repo = await f.open()
    const held = await RepositoryLock.acquire(repo.backend, {exclusive: false, command: 'test'})
    let signal!: () => void
    const waiting = new Promise<void>((resolve) => (signal = resolve))
    const running = prune(f, {
      ...opts,
      exclusiveRetryMs: 30_000,
      onProgress: (text) => {
        if (text.includes('exclusive lock')) signal()
      },
    })
    const settled = running.then(() => undefined, () => undefined)
    await Promise.race([waiting, settled])
    try {
      await meanwhile()
    } finally {
      await held.release()
    }
    return running
  }

  test('a snapshot written meanwhile that reuses blobs the plan thought dead keeps their pack', async () => {
    f = await fixture()
    await write(path.join(f.src, 'x'), seededBytes(200 * KB, 1))
    const a = await snap(f, {time: '2026-11-01T00:00:00Z'})
    const original = await captureTree(f.src)
    await write(path.join(f.src, 'x'), seededBytes(200 * KB, 2))
    await snap(f, {time: '2026-11-02T00:00:00Z'})
    const packA = (await prune(f, {policy: {last: 1}, dryRun: true})).plan.changes[0]!
    expect(packA.action).toBe('delete')

    let c = ''
    const captured = new Map()
    const r = await pruneWithInterlude({policy: {last: 1}}, async () => {
      await write(path.join(f.src, 'x'), seededBytes(200 * KB, 1))
      c = await snap(f, {time: '2026-11-03T00:00:00Z'})
      captured.set(c, await captureTree(f.src))
    })
    expect(r.removed).toEqual([a])
    expect(r.result!.newSnapshotsMarked).toBe(1)
    expect(r.result!.rescuedPacks).toEqual([packA.name])
    expect(await names(f, 'data')).toContain(packA.name)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(1)
    expect(diffTrees(original, captured.get(c)!, {ignoreRootMtime: true}).filter((l) => !l.includes('mtime'))).toEqual([])
  })

  test('a snapshot pinned meanwhile is not removed, and its data stays', async () => {
    f = await fixture()
    const {a, captured} = await twoSnapshots()
    const r = await pruneWithInterlude({policy: {last: 1}}, async () => {
      await pinSnapshot(await f.open(), a)
    })
    expect(r.removed).toEqual([])
    expect(r.result!.rescuedPacks.length).toBe(1)
    expect(await names(f, 'snapshots')).toContain(a)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(2)
  })

  test('two prunes at once: one commits, the other plans again; nothing is lost', async () => {
    f = await fixture()
    const captured = new Map()
    for (let i = 0; i < 6; i++) {
      await write(path.join(f.src, `f${i % 3}`), seededBytes(40 * KB, 20 + i))
      const id = await snap(f, {time: `2026-11-0${i + 1}T00:00:00Z`})
      captured.set(id, await captureTree(f.src))
    }
    const [x, y] = await Promise.all([prune(f, {policy: {last: 3}, mergeSmall: true}), prune(f, {policy: {last: 2}, mergeSmall: true})])
    expect(x.result!.attempts + y.result!.attempts).toBeGreaterThanOrEqual(2)
    const left = await names(f, 'snapshots')
    expect(left).toHaveLength(2)
    await verifyClean(f.repoDir)
    expect(await restoreAllMatches(f.repoDir, captured, f.root)).toBe(2)
  })

  test('the exclusive lock not coming in time is exit 11, and nothing is deleted', async () => {
    f = await fixture()
    await twoSnapshots()
    const repo = await f.open()
    const held = await RepositoryLock.acquire(repo.backend, {exclusive: false, command: 'snapshot (test)'})
    try {
      const snapshots = await names(f, 'snapshots')
      const err = await prune(f, {policy: {last: 1}, exclusiveRetryMs: 300}).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(LockedError)
      expect((err as LockedError).message).toMatch(/shared lock held by "snapshot \(test\)".*deleted nothing/)
      expect(await names(f, 'snapshots')).toEqual(snapshots)
    } finally {
      await held.release()
    }
    // The next prune finishes the work (the first one's repack is reused, its old packs deleted).
    const r = await prune(f, {policy: {last: 1}})
    expect(r.result!.snapshotsRemoved).toBe(1)
    await verifyClean(f.repoDir)
    const again = await prune(f, {policy: {last: 1}})
    expect(again.plan.changes).toEqual([])
  })
})
