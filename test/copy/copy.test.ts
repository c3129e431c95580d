// ckpt copy in the library, between real local repositories: what is sent (only what the
// destination lacks), what the destination holds afterwards (the same snapshot ids, restoring
// byte for byte, verifying clean), and what a copy refuses.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {coalesce, copySnapshots, type CopySelection} from '../../src/copy/copy.js'
import {IntegrityError, NotFoundError, UsageError} from '../../src/core/errors.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {verifyRepository} from '../../src/verify/verify.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let from: string
const ids: string[] = []

const pick = (refs: string[], extra: Partial<CopySelection> = {}): CopySelection => ({refs, all: false, filter: {}, ...extra})
const all: CopySelection = {refs: [], all: true, filter: {}}

async function freshDestination(name: string, avgChunkSize?: number): Promise<Repository> {
  const dir = path.join(work, name)
  await initLocalRepository(dir, {now: Date.now(), avgChunkSize})
  return openLocalRepository(dir)
}

async function snapshotNames(repo: Repository): Promise<string[]> {
  return (await openLocalRepository(repo.backend.capabilities.localDirectory!)).listSnapshotNames()
}

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-copy-'))
  src = path.join(work, 'src')
  from = path.join(work, 'from')
  await fsp.mkdir(src)
  await buildTree(src, {
    'big.bin': {file: {random: 3 * 1024 * 1024 + 11, seed: 1}},
    'small.txt': 'hello\n',
    'd': {dir: {'e': {dir: {'deep.bin': {file: {random: 400_000, seed: 2}}}}, 'empty': {dir: {}}}},
    'link': {symlink: 'small.txt'},
  })
  await initLocalRepository(from, {now: Date.now()})
  ids.push((await createSnapshot(await openLocalRepository(from), {source: src, program: 'test', tags: ['one']})).id)
  // The second snapshot adds 200 KB of new data and changes one small file.
  await fsp.writeFile(path.join(src, 'new.bin'), seededBytes(200_000, 3))
  await fsp.writeFile(path.join(src, 'small.txt'), 'changed\n')
  ids.push((await createSnapshot(await openLocalRepository(from), {source: src, program: 'test', tags: ['two']})).id)
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('copySnapshots between local repositories', () => {
  it('copies one snapshot, then the next sending only its new blobs, then nothing; the destination restores and verifies', async () => {
    const dst = await freshDestination('to-one')
    const first = await copySnapshots(await openLocalRepository(from), dst, pick([ids[0]!.slice(0, 8)]))
    expect(first.copied.map((c) => c.id)).toEqual([ids[0]])
    expect(first.skipped).toEqual([])
    expect(first.bytesSent).toBeGreaterThan(3 * 1024 * 1024)
    expect(first.verify?.ok).toBe(true)
    expect(await snapshotNames(dst)).toEqual([ids[0]])

    // Dedup: the second snapshot shares everything but new.bin, small.txt and the root tree.
    const second = await copySnapshots(await openLocalRepository(from), await openLocalRepository(dst.backend.capabilities.localDirectory!), pick(['latest']))
    expect(second.copied.map((c) => c.id)).toEqual([ids[1]])
    expect(second.bytesSent).toBeGreaterThan(150_000)
    expect(second.bytesSent).toBeLessThan(300_000)
    expect(second.rawBytes).toBeLessThan(200_000 + 10_000)
    expect(second.blobs).toBeLessThanOrEqual(6)

    // Again: both are there, nothing is read or sent, nothing checked.
    const third = await copySnapshots(await openLocalRepository(from), await openLocalRepository(dst.backend.capabilities.localDirectory!), all)
    expect(third.copied).toEqual([])
    expect(third.skipped).toEqual(ids)
    expect(third.blobs).toBe(0)
    expect(third.verify).toBeUndefined()

    const report = await verifyRepository(dst.backend, {readData: {kind: 'all'}})
    expect(report.errors).toBe(0)
    const target = path.join(work, 'restored-one')
    const back = await openLocalRepository(dst.backend.capabilities.localDirectory!)
    const snap = (await loadCatalog(back)).snapshots.find((s) => s.id === ids[1])!
    await restoreSnapshot(back, snap, {target})
    expect(diffTrees(await captureTree(src), await captureTree(target), {ignoreRootMtime: true})).toEqual([])
  })

  it('--all copies every snapshot in one run, oldest first, each manifest byte for byte', async () => {
    const dst = await freshDestination('to-all')
    const r = await copySnapshots(await openLocalRepository(from), dst, all, {verify: 'read'})
    expect(r.copied.map((c) => c.id)).toEqual(ids)
    // The second snapshot's shared blobs were sent once, with the first.
    expect(r.copied[1]!.bytesSent).toBeLessThan(300_000)
    expect(r.verify?.ok).toBe(true)
    expect(r.verify?.counts.packsRead).toBeGreaterThan(0)
    const source = await openLocalRepository(from)
    for (const id of ids) expect((await dst.readSnapshotBytes(id)).equals(await source.readSnapshotBytes(id))).toBe(true)
  })

  it('a snapshot copied without its parent is complete: verify only notes the missing parent', async () => {
    const dst = await freshDestination('to-child')
    const r = await copySnapshots(await openLocalRepository(from), dst, pick([ids[1]!]))
    expect(r.copied.map((c) => c.id)).toEqual([ids[1]])
    const report = await verifyRepository(dst.backend, {readData: {kind: 'all'}})
    expect(report.errors).toBe(0)
    expect(report.findings.map((f) => f.kind)).toEqual(['parent-missing'])
  })

  it('filters: --tag narrows --all; an id the filter refuses is not found', async () => {
    const dst = await freshDestination('to-filter')
    const r = await copySnapshots(await openLocalRepository(from), dst, {refs: [], all: true, filter: {tags: [['two']]}})
    expect(r.copied.map((c) => c.id)).toEqual([ids[1]])
    await expect(copySnapshots(await openLocalRepository(from), dst, pick([ids[0]!], {filter: {tags: [['two']]}}))).rejects.toBeInstanceOf(NotFoundError)
  })

  it('refuses: an unknown id (exit 4), no selection, --all with ids, the same repository, a destination with smaller chunks (exit 2)', async () => {
    const dst = await freshDestination('to-refused')
    const source = await openLocalRepository(from)
    await expect(copySnapshots(source, dst, pick(['abcdef00']))).rejects.toBeInstanceOf(NotFoundError)
    await expect(copySnapshots(source, dst, pick([]))).rejects.toBeInstanceOf(UsageError)
    await expect(copySnapshots(source, dst, {...all, refs: ['latest']})).rejects.toBeInstanceOf(UsageError)
    await expect(copySnapshots(source, dst, pick(['latest'], {latest: 2}))).rejects.toBeInstanceOf(UsageError)
    await expect(copySnapshots(source, await openLocalRepository(from), all)).rejects.toBeInstanceOf(UsageError)
    const small = await freshDestination('to-small', 64 * 1024)
    await expect(copySnapshots(source, small, all)).rejects.toThrow(/--avg-chunk-size 131072/)
    expect(await dst.listSnapshotNames()).toEqual([])
    // Nothing was written, and no lock stayed behind.
    expect(await fsp.readdir(path.join(dst.backend.capabilities.localDirectory!, 'locks'))).toEqual([])
  })

  it('a damaged chunk in the source stops the copy before any manifest: the destination verifies, and holds no partial pack', async () => {
    const damagedDir = path.join(work, 'from-damaged')
    await fsp.cp(from, damagedDir, {recursive: true})
    const damaged = await openLocalRepository(damagedDir)
    await damaged.loadIndex()
    // Flip a byte in the middle of the largest pack (the 3 MiB file's chunks).
    const packs = [...damaged.packs].sort((a, b) => b.size - a.size)
    const pack = packs[0]!
    const file = path.join(damagedDir, 'data', pack.name.slice(0, 2), pack.name)
    const bytes = await fsp.readFile(file)
    const at = Math.floor(bytes.length / 2)
    bytes[at] = bytes[at]! ^ 0xff
    await fsp.writeFile(file, bytes)
    const dst = await freshDestination('to-damaged')
    await expect(copySnapshots(await openLocalRepository(damagedDir), dst, all)).rejects.toBeInstanceOf(IntegrityError)
    expect(await dst.listSnapshotNames()).toEqual([])
    const report = await verifyRepository(dst.backend, {readData: {kind: 'all'}})
    expect(report.errors).toBe(0)
  })
})

describe('coalesce', () => {
  const b = (pack: string, offset: number, storedLength: number) => ({loc: {pack, offset, storedLength}})
  it('groups neighbours of one pack into ranged reads, through small gaps only, up to 4 MiB', () => {
    const MiB = 1024 * 1024
    const sorted = [b('a', 0, 100), b('a', 100, 100), b('a', 200 + 64 * 1024, 10), b('a', 300 + 128 * 1024, 10), b('b', 0, 3 * MiB), b('b', 3 * MiB, MiB), b('b', 4 * MiB, 1), b('c', 0, 5 * MiB)]
    expect(coalesce(sorted).map((r) => [r.pack, r.start, r.end, r.blobs.length])).toEqual([
      ['a', 0, 200 + 64 * 1024 + 10, 3],
      ['a', 300 + 128 * 1024, 310 + 128 * 1024, 1],
      ['b', 0, 4 * MiB, 2],
      ['b', 4 * MiB, 4 * MiB + 1, 1],
      ['c', 0, 5 * MiB, 1],
    ])
  })
})
