// The restore's last steps against a destination that changes under it: a target or source
// replaced by a symlink while the tree is being written must never be written through. The
// change is made from inside the restore (its progress callback), so the moment is exact.
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import {mkdirSync, promises as fsp, readFileSync, renameSync, symlinkSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BadPathError, BusyError} from '../../src/core/errors.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {encodeJournal, journalPath, recoverInterruptedRestores, removeAbandonedTemps} from '../../src/restore/carry.js'
import {setTimesNs} from '../../src/core/fsmeta.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {buildTree, tempDir} from '../helpers/tree.js'

let work: string
let repoDir: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-restorer-'))
  repoDir = path.join(work, 'repo')
  await initLocalRepository(repoDir, {now: Date.now()})
})

afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function snapshotOf(src: string, excludes: string[] = []) {
  const repo = await openLocalRepository(repoDir)
  const {id} = await createSnapshot(repo, {source: src, excludes, program: 'test'})
  const {snapshots} = await loadCatalog(repo)
  return {repo, snap: snapshots.find((s) => s.id === id)!}
}

async function leftovers(dest: string): Promise<string[]> {
  return (await fsp.readdir(path.dirname(dest))).filter((n) => n.startsWith(`.${path.basename(dest)}.ckpt-restore-`))
}

describe('a destination replaced by a symlink while the restore runs', () => {
  it('--target: the restore stops (BadPathError), writes nothing through the link and leaves no temp tree', async () => {
    const src = path.join(work, 'src-target')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one', 'b': {dir: {'c': 'two'}}})
    const {repo, snap} = await snapshotOf(src)
    const outside = path.join(work, 'outside-target')
    await fsp.mkdir(outside)
    const target = path.join(work, 'target')
    let swapped = false
    const err = await restoreSnapshot(repo, snap, {
      target,
      onProgress: () => {
        if (swapped) return
        swapped = true
        symlinkSync(outside, target)
      },
    }).catch((e: unknown) => e)
    expect(swapped).toBe(true)
    expect(err).toBeInstanceOf(BadPathError)
    expect((err as Error).message).toMatch(/changed during the restore/)
    expect(await fsp.readdir(outside)).toEqual([])
    expect(await fsp.readlink(target)).toBe(outside)
    expect(await leftovers(target)).toEqual([])
  })

  it('in place, with paths to carry: refused before anything moves; the link\'s target keeps its contents', async () => {
    const src = path.join(work, 'src-inplace')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one', 'x.tmp': 'kept'})
    const {repo, snap} = await snapshotOf(src, ['*.tmp'])
    await fsp.writeFile(path.join(src, 'a'), 'changed')
    // What the link will point to: a directory with an excluded file of its own.
    const outside = path.join(work, 'outside-inplace')
    await fsp.mkdir(outside)
    await fsp.writeFile(path.join(outside, 'x.tmp'), 'not yours')
    let swapped = false
    const err = await restoreSnapshot(repo, snap, {
      onProgress: () => {
        if (swapped) return
        swapped = true
        renameSync(src, `${src}-moved`)
        symlinkSync(outside, src)
      },
    }).catch((e: unknown) => e)
    expect(swapped).toBe(true)
    expect(err).toBeInstanceOf(BadPathError)
    expect((err as Error).message).toMatch(/was replaced during the restore/)
    expect(await fsp.readdir(outside)).toEqual(['x.tmp'])
    expect(await fsp.readFile(path.join(outside, 'x.tmp'), 'utf8')).toBe('not yours')
    expect(await fsp.readlink(src)).toBe(outside)
    expect(await fsp.readFile(path.join(`${src}-moved`, 'x.tmp'), 'utf8')).toBe('kept')
    expect(await leftovers(src)).toEqual([])
  })

  it('in place, nothing to carry: the swap replaces the link itself, never what it points to', async () => {
    const src = path.join(work, 'src-swap')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one'})
    const {repo, snap} = await snapshotOf(src)
    await fsp.writeFile(path.join(src, 'a'), 'changed')
    const outside = path.join(work, 'outside-swap')
    mkdirSync(outside)
    await fsp.writeFile(path.join(outside, 'mine'), 'untouched')
    let swapped = false
    await restoreSnapshot(repo, snap, {
      onProgress: () => {
        if (swapped) return
        swapped = true
        renameSync(src, `${src}-moved`)
        symlinkSync(outside, src)
      },
    })
    expect(swapped).toBe(true)
    expect((await fsp.lstat(src)).isDirectory()).toBe(true)
    expect(await fsp.readFile(path.join(src, 'a'), 'utf8')).toBe('one')
    expect(await fsp.readdir(outside)).toEqual(['mine'])
    expect(await fsp.readFile(path.join(outside, 'mine'), 'utf8')).toBe('untouched')
    expect(await leftovers(src)).toEqual([])
  })
})

describe('an abandoned temp tree with a carry journal (a restore killed midway)', () => {
  /** A pid that was alive a moment ago and is not any more. */
  function deadPid(): number {
    const child = spawnSync(process.execPath, ['-e', ''])
    return child.pid
  }

  async function setUp(name: string) {
    const dest = path.join(work, name)
    await fsp.mkdir(dest)
    await buildTree(dest, {'a': 'new tree', '.ckpt': {dir: {config: 'the repository'}}})
    const temp = path.join(work, `.${name}.ckpt-restore-${deadPid()}-0000abcd`)
    const st = await fsp.lstat(path.join(dest, '.ckpt'), {bigint: true})
    const carried = [{rel: Buffer.from('.ckpt'), dev: st.dev, ino: st.ino}]
    await fsp.mkdir(temp)
    return {dest, temp, carried}
  }

  it('after the swap (the old tree holds nothing carried): the temp tree and journal go, the repository stays', async () => {
    const {dest, temp, carried} = await setUp('after-swap')
    await buildTree(temp, {'a': 'old tree'})
    await fsp.writeFile(journalPath(temp), encodeJournal(carried))
    expect(await removeAbandonedTemps(work, 'after-swap')).toBe(1)
    expect(await fsp.readFile(path.join(dest, '.ckpt', 'config'), 'utf8')).toBe('the repository')
    expect(await leftovers(dest)).toEqual([])
  })

  it('before the swap: the repository goes back into the destination, also over an empty look-alike a lock refresh made', async () => {
    const {dest, temp, carried} = await setUp('before-swap')
    await buildTree(temp, {'a': 'new tree'})
    await fsp.rename(path.join(dest, '.ckpt'), path.join(temp, '.ckpt'))
    await fsp.mkdir(path.join(dest, '.ckpt', 'locks'), {recursive: true})
    await fsp.writeFile(journalPath(temp), encodeJournal(carried))
    expect(await recoverInterruptedRestores(path.join(dest, '.ckpt'))).toBe(true)
    expect(await fsp.readFile(path.join(dest, '.ckpt', 'config'), 'utf8')).toBe('the repository')
    expect(await fsp.readdir(path.join(dest, '.ckpt'))).toEqual(['config'])
    expect(await fsp.readFile(path.join(dest, 'a'), 'utf8')).toBe('new tree')
    expect(await leftovers(dest)).toEqual([])
  })

  it('killed between the two renames of the fallback swap (destination missing, old tree aside): the old tree goes back, carried paths into it, the new one goes', async () => {
    const {dest, temp, carried} = await setUp('between-renames')
    await fsp.writeFile(path.join(dest, 'a'), 'the old tree')
    await buildTree(temp, {'a': 'the new tree'})
    await fsp.rename(path.join(dest, '.ckpt'), path.join(temp, '.ckpt'))
    await fsp.writeFile(journalPath(temp), encodeJournal(carried))
    await fsp.rename(dest, temp + '-old')
    expect(await removeAbandonedTemps(work, 'between-renames')).toBe(2)
    expect(await fsp.readFile(path.join(dest, 'a'), 'utf8')).toBe('the old tree')
    expect(await fsp.readFile(path.join(dest, '.ckpt', 'config'), 'utf8')).toBe('the repository')
    expect(await leftovers(dest)).toEqual([])
  })

  it('the next in-place restore puts the set-aside tree back before it looks at the destination, then replaces it as usual', async () => {
    const src = path.join(work, 'src-aside')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one'})
    const {repo, snap} = await snapshotOf(src)
    await fsp.writeFile(path.join(src, 'a'), 'two')
    const temp = path.join(work, `.src-aside.ckpt-restore-${deadPid()}-0000abcd`)
    await fsp.mkdir(temp)
    await fsp.rename(src, temp + '-old')
    const saved: string[] = []
    const r = await restoreSnapshot(repo, snap, {beforeReplace: async (dir) => void saved.push(await fsp.readFile(path.join(dir, 'a'), 'utf8'))})
    expect(r.replaced).toBe(true)
    expect(saved).toEqual(['two'])
    expect(await fsp.readFile(path.join(src, 'a'), 'utf8')).toBe('one')
    expect(await leftovers(src)).toEqual([])
  })

  it('a journal it cannot read: both are left for a person, with a message saying so', async () => {
    const {dest, temp} = await setUp('bad-journal')
    await buildTree(temp, {'a': 'new tree'})
    await fsp.writeFile(journalPath(temp), 'not json')
    await expect(removeAbandonedTemps(work, 'bad-journal')).rejects.toThrow(/cannot read .*\.carry; .* move them back by hand/)
    expect((await leftovers(dest)).sort()).toEqual([path.basename(temp), path.basename(journalPath(temp))].sort())
  })
})

describe('a program that starts using the source while an in-place restore writes the new tree', () => {
  it('is found again just before the swap: BusyError, the source unchanged, no temp tree left', async () => {
    const src = path.join(work, 'src-busy-late')
    await fsp.mkdir(src)
    await buildTree(src, {'a': 'one'})
    const {repo, snap} = await snapshotOf(src)
    await fsp.writeFile(path.join(src, 'a'), 'two')
    let child: ChildProcess | undefined
    try {
      const err = await restoreSnapshot(repo, snap, {
        // After the first check, before the tree is written: a program starts with its cwd inside.
        beforeReplace: async () => {
          child = spawn('sleep', ['1000'], {cwd: src, stdio: 'ignore'})
          const t0 = performance.now()
          while (readFileSync(`/proc/${child.pid}/comm`, 'latin1').trim() !== 'sleep') {
            if (performance.now() - t0 > 30_000) throw new Error('sleep did not start')
            await new Promise((r) => setTimeout(r, 2))
          }
        },
      }).catch((e: unknown) => e)
      expect(child).toBeDefined()
      expect(err).toBeInstanceOf(BusyError)
      expect((err as Error).message).toContain(`pid ${child!.pid} (sleep): its cwd`)
      expect(await fsp.readFile(path.join(src, 'a'), 'utf8')).toBe('two')
      expect(await leftovers(src)).toEqual([])
    } finally {
      child?.kill('SIGKILL')
    }
  })
})

describe('what an in-place restore carries over', () => {
  it('leaves the directories it carries into with the snapshot\'s mtimes, the root\'s included', async () => {
    const src = path.join(work, 'carry-times')
    mkdirSync(src)
    await buildTree(src, {state: 'state', logs: {dir: {a: 'log'}}, sub: {dir: {kept: {dir: {b: 'kept'}}, data: 'data'}}})
    const times = new Map([['', 1_600_000_000_123_456_789n], ['sub', 1_500_000_000_987_654_321n]])
    for (const [rel, ns] of times) setTimesNs(path.join(src, rel), ns, ns)
    const {repo, snap} = await snapshotOf(src, ['logs', 'sub/kept'])
    await fsp.writeFile(path.join(src, 'state'), 'changed')
    await fsp.writeFile(path.join(src, 'sub/data'), 'changed')
    const result = await restoreSnapshot(repo, snap, {})
    expect(result.replaced).toBe(true)
    expect(await fsp.readFile(path.join(src, 'logs/a'), 'utf8')).toBe('log')
    expect(await fsp.readFile(path.join(src, 'sub/kept/b'), 'utf8')).toBe('kept')
    expect(await fsp.readFile(path.join(src, 'sub/data'), 'utf8')).toBe('data')
    for (const [rel, ns] of times) expect((await fsp.lstat(path.join(src, rel), {bigint: true})).mtimeNs).toBe(ns)
  })
})
