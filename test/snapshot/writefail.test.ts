// A snapshot whose writes fail (ENOSPC above all) gives back what it wrote before the error
// reaches the caller: no temp object, and no pack that no index file names. A backend wrapper
// injects the failure at a chosen write, commit or index put.
import {promises as fsp, readdirSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {classifyOsError, NoSpaceError} from '../../src/core/errors.js'
import {initLocalRepository} from '../../src/repo/open.js'
import {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import type {Backend, ByteRange, ObjectInfo, ObjectKind, ObjectWriter, TempObject} from '../../src/store/backend.js'
import {LocalBackend} from '../../src/store/local.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

type Op = 'write' | 'commit' | 'put'

/** What the local backend throws on a full disk. */
function enospc(): unknown {
  return classifyOsError(Object.assign(new Error('ENOSPC: no space left on device, write'), {code: 'ENOSPC', errno: -28}), 'a test object')
}

/** Delegates to a local backend; the `at`th call of `op` on `kind` (1-based) and every later one fail with ENOSPC. */
class FullBackend implements Backend {
  private calls = 0
  constructor(private readonly inner: LocalBackend, private readonly op: Op, private readonly kind: ObjectKind, private readonly at: number) {}
  get location(): string {
    return this.inner.location
  }
  private fails(op: Op, kind: ObjectKind): boolean {
    return op === this.op && kind === this.kind && ++this.calls >= this.at
  }
  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.fails('put', kind)) throw enospc()
    return this.inner.put(kind, name, data)
  }
  async create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    const w = await this.inner.create(kind, name)
    return {
      write: async (data, position) => {
        if (this.fails('write', kind)) throw enospc()
        return w.write(data, position)
      },
      commit: async () => {
        if (this.fails('commit', kind)) {
          await w.abort() // as a real failed commit: the backend removes its temp object
          throw enospc()
        }
        return w.commit()
      },
      abort: () => w.abort(),
    }
  }
  get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    return this.inner.get(kind, name, range, into)
  }
  stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    return this.inner.stat(kind, name)
  }
  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind)
  }
  delete(kind: ObjectKind, name: string): Promise<void> {
    return this.inner.delete(kind, name)
  }
  temporaries(): AsyncIterable<TempObject> {
    return this.inner.temporaries()
  }
  removeTemporary(id: string): Promise<void> {
    return this.inner.removeTemporary(id)
  }
}

let work: string
let src: string
let repoDir: string
beforeEach(async () => {
  work = await tempDir('ckpt-writefail-')
  src = path.join(work, 'src')
  repoDir = path.join(work, 'repo')
  await fsp.mkdir(src)
  // Incompressible, six 1 MiB packs' worth: several packs are sealed before the failure.
  await fsp.writeFile(path.join(src, 'weights'), seededBytes(6 * 1024 * 1024, 21))
  await initLocalRepository(repoDir, {now: Date.now(), packSize: 1024 * 1024})
})
afterEach(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

/** Every file under data/ and index/, temp files included. */
function written(): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, {withFileTypes: true})) {
      if (e.isDirectory()) walk(path.join(dir, e.name))
      else out.push(path.relative(repoDir, path.join(dir, e.name)))
    }
  }
  walk(path.join(repoDir, 'data'))
  walk(path.join(repoDir, 'index'))
  for (const name of readdirSync(repoDir)) if (name.startsWith('.tmp-')) out.push(name)
  return out
}

describe('a snapshot whose writes fail', () => {
  test.each<[string, Op, ObjectKind, number]>([
    ['a pack write mid-pack (after two packs were sealed)', 'write', 'data', 12],
    ['a pack commit (after one pack was sealed)', 'commit', 'data', 2],
    ['the index file write (every pack sealed)', 'put', 'index', 1],
  ])('ENOSPC at %s: NoSpaceError, no temp object and no unindexed pack left', async (_what, op, kind, at) => {
    const repo = await Repository.open(new FullBackend(new LocalBackend(repoDir), op, kind, at))
    const err = await createSnapshot(repo, {source: src, program: 'test'}).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(NoSpaceError)
    expect(written()).toEqual([])
    // With space again, the same snapshot succeeds.
    const ok = await createSnapshot(await Repository.open(new LocalBackend(repoDir)), {source: src, program: 'test'})
    expect(ok.manifest.summary.newBlobs).toBeGreaterThan(0)
  })
})
