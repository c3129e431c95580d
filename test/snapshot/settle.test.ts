// checkSettled: after a capture, every way a directory can move under it is named, and a
// directory that held still is reported consistent. Real trees, a real repository.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, expect, test} from 'vitest'

import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {checkSettled, type SettleReport} from '../../src/snapshot/settle.js'
import {TreeCache} from '../../src/snapshot/treecache.js'
import {buildTree, tempDir} from '../helpers/tree.js'

let root: string
let src: string
let repoDir: string
const OLD = 1_700_000_000_000_000_000n // files dated well before any capture

beforeEach(async () => {
  root = await tempDir()
  src = path.join(root, 'src')
  repoDir = path.join(root, 'repo')
  await fsp.mkdir(src)
  await buildTree(src, {
    'a.log': {file: 'alpha', mtimeNs: OLD},
    'b.sst': {file: {random: 100_000, seed: 3}, mtimeNs: OLD},
    cache: {dir: {'x.tmp': 'skip me'}},
    db: {dir: {CURRENT: {file: 'MANIFEST-1', mtimeNs: OLD}, deep: {dir: {'c.bin': {file: 'gamma', mtimeNs: OLD}}}}},
    link: {symlink: 'a.log'},
  })
  await initLocalRepository(repoDir, {now: Date.now()})
})

afterEach(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

/** Snapshot, then wait until the clock is past the racy window of everything the fixture just wrote. */
async function capture(excludes: string[] = []): Promise<{tree: Buffer; startNs: bigint; check: () => Promise<SettleReport>}> {
  // The fixture's ctimes are now: let the clock pass the racy window first (it is what is waited for).
  const written = Date.now()
  while (Date.now() < written + 60) await new Promise((r) => setTimeout(r, 10))
  const repo = await openLocalRepository(repoDir)
  const {manifest} = await createSnapshot(repo, {source: src, program: 'test', excludes})
  const tree = Buffer.from(manifest.tree, 'hex')
  const startNs = BigInt(manifest.startTimeNs)
  return {tree, startNs, check: () => checkSettled(new TreeCache(repo), {source: src, tree, excludes, skipDirs: [], startNs})}
}

const kinds = (r: SettleReport) => r.moves.map((m) => `${m.change} ${m.path}`).sort()

test('a directory that held still is consistent', async () => {
  // Directory creation times are recent, but only files' times are judged.
  const c = await capture()
  expect(await c.check()).toEqual({consistent: true, moves: [], moveCount: 0})
})

test('every kind of move is named', async () => {
  const c = await capture()
  await fsp.appendFile(path.join(src, 'a.log'), '+more') // changed
  await fsp.writeFile(path.join(src, 'db/CURRENT.tmp'), 'MANIFEST-2') // renamed over: replaced
  await fsp.rename(path.join(src, 'db/CURRENT.tmp'), path.join(src, 'db/CURRENT'))
  await fsp.rm(path.join(src, 'db/deep/c.bin')) // vanished, in a subdirectory
  await fsp.writeFile(path.join(src, 'db/deep/new.sst'), 'new') // appeared
  // A new symlink renamed over it: replaced. (Removing it first would free its inode number for
  // the new one to take, which some filesystems do at once: a "change" of the same inode.)
  await fsp.symlink('b.sst', path.join(src, 'link.new'))
  await fsp.rename(path.join(src, 'link.new'), path.join(src, 'link'))
  const r = await c.check()
  expect(r.consistent).toBe(false)
  expect(kinds(r)).toEqual(['appeared db/deep/new.sst', 'changed a.log', 'replaced db/CURRENT', 'replaced link', 'vanished db/deep/c.bin'])
  expect(r.moveCount).toBe(5)
})

test('a file rewritten in place with its old size and times restored is still caught (ctime)', async () => {
  const c = await capture()
  const file = path.join(src, 'b.sst')
  const st = await fsp.stat(file, {bigint: true})
  const fh = await fsp.open(file, 'r+')
  await fh.write(Buffer.from('XX'), 0, 2, 10)
  await fh.close()
  await fsp.utimes(file, Number(st.atimeNs / 1_000_000n) / 1000, Number(st.mtimeNs / 1_000_000n) / 1000)
  const r = await c.check()
  expect(kinds(r)).toEqual(['changed b.sst'])
})

test('a file written just before the capture began cannot be proven unchanged', async () => {
  const c = await capture()
  const repo = await openLocalRepository(repoDir)
  await repo.loadIndex()
  // Pretend the capture began right after a.log's last change: equal times prove nothing then.
  const st = await fsp.stat(path.join(src, 'a.log'), {bigint: true})
  const r = await checkSettled(new TreeCache(repo), {source: src, tree: c.tree, excludes: [], skipDirs: [], startNs: st.ctimeNs + 1_000_000n})
  expect(kinds(r)).toContain('written-during a.log')
  expect(r.consistent).toBe(false)
})

test('excluded paths and a skipped directory are not judged', async () => {
  const c = await capture(['*.tmp', 'cache/**'])
  await fsp.writeFile(path.join(src, 'cache/x.tmp'), 'changed, but excluded')
  await fsp.writeFile(path.join(src, 'scratch.tmp'), 'new, but excluded')
  expect(await c.check()).toEqual({consistent: true, moves: [], moveCount: 0})
})

test('a vanished source directory is reported, not thrown', async () => {
  const c = await capture()
  await fsp.rm(path.join(src, 'db'), {recursive: true})
  const r = await c.check()
  expect(kinds(r)).toEqual(['vanished db'])
})
