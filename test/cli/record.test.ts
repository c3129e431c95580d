// The built CLI and the restore record (snapshot/restorerecord.ts): after `ckpt restore`, the next
// `ckpt snapshot` of the restored directory reads none of its files and names the restored snapshot
// as its parent, and a second in-place rollback hashes only what changed since the first.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, it} from 'vitest'

import {ckpt, ckptJson} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-cli-record-'))
  env = {...process.env, CKPT_CACHE_DIR: path.join(work, 'cache')}
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

interface Snap {
  id: string
  parent?: string | null
  filesRead: number
}
interface Restored {
  recorded?: boolean
  filesHashed: number
  filesReused: number
}

it('restore, then snapshot and roll back again through the CLI: only what changed is read', async () => {
  const src = path.join(work, 'state')
  const repo = path.join(work, 'repo')
  await fsp.mkdir(src)
  await buildTree(src, {
    'big.bin': seededBytes(3 * 1024 * 1024, 1),
    'wal.log': 'one\n',
    'd': {dir: {'a.txt': 'a\n', 'b.bin': seededBytes(200 * 1024, 2)}},
  })
  const want = await captureTree(src)
  await ckpt(['init', '--repo', repo], {env})
  const first = await ckptJson<Snap>(['snapshot', src, '--repo', repo], {env})

  const out = path.join(work, 'copy')
  const restored = await ckptJson<Restored>(['restore', first.id, '--target', out, '--repo', repo], {env})
  expect(restored.recorded).toBe(true)
  const next = await ckptJson<Snap>(['snapshot', out, '--repo', repo], {env})
  expect(next.filesRead).toBe(0)
  expect(next.parent).toBe(first.id)

  // In place: roll back, change the directory, roll back again (without the safety snapshot, so
  // only the first rollback's record knows the files it left).
  await fsp.writeFile(path.join(src, 'wal.log'), 'two\n')
  await ckpt(['restore', first.id, '--repo', repo, '--no-safety-snapshot'], {env})
  await fsp.appendFile(path.join(src, 'wal.log'), 'three\n')
  const again = await ckptJson<Restored>(['restore', first.id, '--repo', repo, '--no-safety-snapshot'], {env})
  expect(diffTrees(want, await captureTree(src), {ignoreRootMtime: true})).toEqual([])
  expect(again.filesHashed).toBe(1)
  expect(again.filesReused).toBe(3)
})
