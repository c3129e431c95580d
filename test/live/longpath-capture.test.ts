// A paused capture of a tree deeper than PATH_MAX: the pause's walk and its copies reach every
// path (through open ancestors), and a file changed under the deep path is stored as it was in
// the pause. Before, the walk threw ENAMETOOLONG and the capture failed.
import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, expect, it} from 'vitest'

import {LongPaths} from '../../src/core/longpath.js'
import {pausedCapture} from '../../src/live/capture.js'
import {BlobType} from '../../src/repo/pack.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {tempDir} from '../helpers/tree.js'

let work: string
beforeEach(async () => {
  work = await tempDir('ckpt-longcapture-')
})
afterEach(() => {
  spawnSync('rm', ['-rf', work])
})

it('captures a file under a path of more than 8 KiB with the program paused', async () => {
  const src = path.join(work, 'src')
  const repoDir = path.join(work, 'repo')
  mkdirSync(src)
  const paths = new LongPaths()
  const names: string[] = []
  let abs = Buffer.from(src)
  try {
    while (abs.length < 8300) {
      names.push(`${names.length}`.padEnd(200, 'y'))
      abs = Buffer.concat([abs, Buffer.from('/' + names[names.length - 1]!)])
      mkdirSync(paths.short(abs))
    }
    writeFileSync(paths.short(Buffer.concat([abs, Buffer.from('/deep')])), 'state')
  } finally {
    paths.close()
  }
  await initLocalRepository(repoDir, {now: Date.now()})
  const program = spawn('sleep', ['30'], {stdio: 'ignore'})
  try {
    const repo = await openLocalRepository(repoDir)
    const {manifest} = await createSnapshot(repo, {
      source: src, program: 'test',
      capture: pausedCapture({targets: {pids: [program.pid!]}, maxPauseMs: 10_000, hooks: {}, repoLocation: repoDir}),
    })
    expect(manifest.warnings).toEqual([])
    await repo.loadIndex()
    let tree: Buffer = Buffer.from(manifest.tree, 'hex')
    for (const name of names) {
      const node = decodeTree(await repo.readBlob(tree, BlobType.tree), tree.toString('hex')).find((n) => n.name.toString() === name)!
      tree = node.subtree!
    }
    const deep = decodeTree(await repo.readBlob(tree, BlobType.tree), tree.toString('hex')).find((n) => n.name.toString() === 'deep')!
    expect((await repo.readBlob(deep.chunks![0]!, BlobType.data)).toString()).toBe('state')
  } finally {
    program.kill('SIGKILL')
  }
})
