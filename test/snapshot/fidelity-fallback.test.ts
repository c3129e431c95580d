// The snapshot without the native addon: xattrs and flags are not recorded (one warning each, the
// snapshot complete), a sparse file is read whole (correct, not sparse), and the manifest says
// metadata was skipped so that the next snapshot with the addon reads xattrs afresh instead of
// taking "none" from the stat cache. The addon is looked up on first use, after this line.
import {spawnSync} from 'node:child_process'
import {closeSync, ftruncateSync, mkdirSync, openSync, writeFileSync, writeSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, expect, it} from 'vitest'

import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {tempDir} from '../helpers/tree.js'

process.env['CKPT_NATIVE'] = '0'

let work: string
beforeEach(async () => {
  work = await tempDir('ckpt-fidelity-fb-')
})
afterEach(() => {
  spawnSync('rm', ['-rf', work])
})

it('warns once per kind, reads a sparse file whole, and marks the manifest', async () => {
  const src = path.join(work, 'src')
  mkdirSync(src)
  for (let i = 0; i < 5; i++) writeFileSync(path.join(src, `f${i}`), 'x')
  spawnSync('setfattr', ['-n', 'user.k', '-v', 'v', path.join(src, 'f0')])
  const fd = openSync(path.join(src, 'sparse'), 'w')
  ftruncateSync(fd, 4 * 1024 * 1024)
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0)
  closeSync(fd)
  const repoDir = path.join(work, 'repo')
  await initLocalRepository(repoDir, {now: Date.now()})
  const repo = await openLocalRepository(repoDir)
  const {manifest} = await createSnapshot(repo, {source: src, program: 'test', nowNs: () => BigInt(Date.now()) * 1_000_000n + 10_000_000_000n})
  expect(manifest.warnings.map((w) => w.kind)).toEqual(['metadata', 'metadata'])
  expect(manifest.summary.incomplete).toBe(0)
  expect(manifest.summary.bytesRead).toBe(4 * 1024 * 1024 + 5)
  expect(manifest.metadataSkipped).toBe(true)
  await repo.loadIndex()
  const nodes = decodeTree(await repo.readBlob(Buffer.from(manifest.tree, 'hex'), BlobType.tree), manifest.tree)
  expect(nodes.find((n) => n.name.toString() === 'sparse')!.extents).toBeUndefined()
  expect(nodes.find((n) => n.name.toString() === 'f0')!.xattrs).toBeUndefined()
})
