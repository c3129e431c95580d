// The local cache of a remote repository's index files, manifests and trees (src/store/cache.ts):
// an unchanged snapshot reads them from the cache, not the store; a damaged entry is never
// believed (it is dropped and read again); the cache stays under its bound.
import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {initRepository, openLocalRepository} from '../../src/repo/open.js'
import {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import type {Backend, BackendCapabilities, ObjectKind} from '../../src/store/backend.js'
import {ObjectCache} from '../../src/store/cache.js'
import {LocalBackend} from '../../src/store/local.js'
import {buildTree, tempDir} from '../helpers/tree.js'

/** A local directory that presents itself as remote (no localDirectory), counting reads by kind. */
function remote(root: string): Backend & {reads: Map<ObjectKind, number>} {
  const inner = new LocalBackend(root)
  const reads = new Map<ObjectKind, number>()
  const capabilities: BackendCapabilities = {listLagMs: 0}
  return Object.assign(Object.create(inner) as LocalBackend, {
    capabilities,
    reads,
    get: (kind: ObjectKind, name: string, range?: {offset: number; length: number}, into?: Buffer) => {
      reads.set(kind, (reads.get(kind) ?? 0) + 1)
      return inner.get(kind, name, range, into)
    },
  })
}

let work: string
beforeEach(async () => {
  work = await tempDir('ckpt-cache-')
  process.env.CKPT_CACHE_DIR = path.join(work, 'cache')
})
afterEach(async () => {
  delete process.env.CKPT_CACHE_DIR
  await fsp.rm(work, {recursive: true, force: true})
})

describe('cache of a remote repository', () => {
  test('an unchanged snapshot reads no index file, manifest or tree from the store; damaged entries are read again', async () => {
    const src = path.join(work, 'src')
    await fsp.mkdir(src)
    await buildTree(src, {a: {dir: {b: {dir: {'f.txt': 'x'}}, 'g.txt': 'y'}}, 'h.bin': {file: {random: 200_000, seed: 3}}})
    const repoDir = path.join(work, 'repo')
    const first = await initRepository(remote(repoDir), {now: Date.now()})
    expect(first.cache).toBeDefined()
    await createSnapshot(first, {source: src, program: 'test'})

    const backend = remote(repoDir)
    const again = await Repository.open(backend)
    await createSnapshot(again, {source: src, program: 'test'})
    expect(backend.reads.get('index') ?? 0).toBe(0)
    expect(backend.reads.get('snapshots') ?? 0).toBe(0)
    expect(backend.reads.get('data') ?? 0).toBe(0)
    expect(again.cache!.hits).toBeGreaterThan(3)

    // Damage every cached tree: the next snapshot reads them from the store, and is still right.
    const trees = path.join(work, 'cache', first.config.id, 'trees')
    for (const name of await fsp.readdir(trees)) await fsp.writeFile(path.join(trees, name), 'garbage')
    const third = remote(repoDir)
    const repo3 = await Repository.open(third)
    const {manifest} = await createSnapshot(repo3, {source: src, program: 'test'})
    expect(third.reads.get('data') ?? 0).toBeGreaterThan(0)
    expect(manifest.summary.newBytes).toBe(0)
    for (const name of await fsp.readdir(trees)) expect((await fsp.readFile(path.join(trees, name))).toString()).not.toBe('garbage')
  })

  test('a local repository has no cache', async () => {
    const repo = await initRepository(new LocalBackend(path.join(work, 'local')), {now: Date.now()})
    expect(repo.cache).toBeUndefined()
    expect((await openLocalRepository(path.join(work, 'local'))).cache).toBeUndefined()
  })

  test('the cache keeps under its bound, oldest first, and ignores keys that are not hashes', async () => {
    const cache = new ObjectCache(path.join(work, 'c'), 1)
    const key = (i: number) => i.toString(16).padStart(64, '0')
    for (let i = 0; i < 6; i++) {
      cache.put('trees', key(i), Buffer.alloc(300 * 1024, i))
      const t = new Date(Date.now() - (10 - i) * 1000)
      await fsp.utimes(path.join(work, 'c', 'trees', key(i)), t, t)
    }
    cache.trim()
    const left = (await fsp.readdir(path.join(work, 'c', 'trees'))).sort()
    expect(left.length).toBeLessThanOrEqual(2)
    expect(left).toContain(key(5))
    cache.put('trees', '../escape', Buffer.from('x'))
    expect(cache.get('trees', '../escape')).toBeUndefined()
  })
})
