// A snapshot whose writes fail (ENOSPC above all) gives back what it wrote before the error
// reaches the caller: no temp object, and no pack that no index file names. The fault-injecting
// backend (test/helpers/faultbackend.ts) fails a chosen write, commit or index put with ENOSPC.
import {promises as fsp, readdirSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {classifyOsError, NoSpaceError} from '../../src/core/errors.js'
import {initLocalRepository} from '../../src/repo/open.js'
import {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import type {ObjectKind} from '../../src/store/backend.js'
import {LocalBackend} from '../../src/store/local.js'
import {FaultyBackend, type FaultOp} from '../helpers/faultbackend.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

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
  test.each<[string, FaultOp, ObjectKind, number]>([
    ['a pack write mid-pack (after two packs were sealed)', 'write', 'data', 12],
    ['a pack commit (after one pack was sealed)', 'commit', 'data', 2],
    ['the index file write (every pack sealed)', 'put', 'index', 1],
  ])('ENOSPC at %s: NoSpaceError, no temp object and no unindexed pack left', async (_what, op, kind, at) => {
    const repo = await Repository.open(new FaultyBackend(new LocalBackend(repoDir), {fault: 'ENOSPC', nth: at, ops: [op], kind}))
    const err = await createSnapshot(repo, {source: src, program: 'test'}).then(() => undefined, (e: unknown) => e)
    // The local backend names a full disk NoSpaceError (exit 7); the wrapper raises the OS error it would see.
    expect(classifyOsError(err, 'the repository')).toBeInstanceOf(NoSpaceError)
    expect(written()).toEqual([])
    // With space again, the same snapshot succeeds.
    const ok = await createSnapshot(await Repository.open(new LocalBackend(repoDir)), {source: src, program: 'test'})
    expect(ok.manifest.summary.newBlobs).toBeGreaterThan(0)
  })
})
