// A damaged stored chunk is never reused: after its blob is dropped from the index (what
// `ckpt repair` does) the stat cache re-reads the file and stores the chunk again; and
// `snapshot --force`, which reads everything, checks each stored copy it deduplicates against and
// stops with exit code 12 rather than write a snapshot that references damaged bytes.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {IntegrityError} from '../../src/core/errors.js'
import {toHex} from '../../src/core/ids.js'
import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import type {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let repoDir: string
beforeEach(async () => {
  work = await tempDir('ckpt-damaged-')
  src = path.join(work, 'src')
  repoDir = path.join(work, 'repo')
  await fsp.mkdir(src)
  await fsp.writeFile(path.join(src, 'weights'), seededBytes(700_000, 11))
  await fsp.writeFile(path.join(src, 'notes.txt'), 'hello '.repeat(20_000))
  await initLocalRepository(repoDir, {now: Date.now()})
  await new Promise((r) => setTimeout(r, 100)) // out of the racy window of the first snapshot
})
afterEach(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function chunksOf(repo: Repository, tree: string, name: string): Promise<Buffer[]> {
  await repo.loadIndex()
  return decodeTree(await repo.readBlob(Buffer.from(tree, 'hex'), BlobType.tree), tree).find((n) => n.name.toString() === name)!.chunks!
}

/** Flip one byte in the middle of a blob's stored bytes. */
async function damage(repo: Repository, id: Buffer): Promise<void> {
  const loc = repo.lookup(id)!
  const file = path.join(repoDir, 'data', loc.pack.slice(0, 2), loc.pack)
  const fh = await fsp.open(file, 'r+')
  const at = loc.offset + Math.floor(loc.storedLength / 2)
  const b = Buffer.alloc(1)
  await fh.read(b, 0, 1, at)
  b[0] = b[0]! ^ 0xff
  await fh.write(b, 0, 1, at)
  await fh.close()
}

/** Rewrite the index files without `id` (what repair does with a damaged blob). */
async function dropFromIndex(repo: Repository, id: Buffer): Promise<void> {
  for (const name of [...repo.indexFiles]) {
    const packs = await repo.readIndexFile(name)
    await repo.writeIndex(packs.map((p) => ({...p, entries: p.entries.filter((e) => !Buffer.from(e.id).equals(id))})))
    await repo.backend.delete('index', name)
  }
}

const snap = async (force = false) => createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'test', force})

describe('a damaged stored chunk', () => {
  test('snapshot --force stops with exit code 12 naming the blob and ckpt repair; no manifest is written', async () => {
    const first = await snap()
    const repo = await openLocalRepository(repoDir)
    const victim = (await chunksOf(repo, first.manifest.tree, 'weights'))[1]!
    await damage(repo, victim)
    const before = await repo.listSnapshotNames()

    const err = await snap(true).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(IntegrityError)
    expect((err as IntegrityError).exitCode).toBe(12)
    expect((err as Error).message).toContain(toHex(victim))
    expect((err as Error).message).toContain('ckpt repair')
    expect(await repo.listSnapshotNames()).toEqual(before)
  })

  test('snapshot --force of an intact repository reuses every blob and writes the snapshot', async () => {
    const first = await snap()
    const again = await snap(true)
    expect(again.manifest.tree).toBe(first.manifest.tree)
    expect(again.manifest.summary.newBlobs).toBe(0)
    expect(again.manifest.summary.filesRead).toBe(2)
  })

  test('once repair dropped the blob from the index, a plain snapshot re-reads the file and stores the chunk again', async () => {
    const first = await snap()
    const repo = await openLocalRepository(repoDir)
    const chunks = await chunksOf(repo, first.manifest.tree, 'weights')
    await damage(repo, chunks[1]!)
    await dropFromIndex(repo, chunks[1]!)

    const second = await snap()
    expect(second.manifest.summary.filesRead).toBe(1) // weights; notes.txt still from the stat cache
    expect(second.manifest.summary.newBlobs).toBeGreaterThanOrEqual(1)
    const fresh = await openLocalRepository(repoDir)
    const stored = Buffer.concat(await Promise.all((await chunksOf(fresh, second.manifest.tree, 'weights')).map((c) => fresh.readBlob(c, BlobType.data))))
    expect(stored.equals(await fsp.readFile(path.join(src, 'weights')))).toBe(true)
  })
})
