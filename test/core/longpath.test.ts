// Long paths on a real tree: a directory chain of 8 KiB built, listed, stat'ed, read and written
// through LongPaths, which plain fs calls refuse with ENAMETOOLONG.
import {spawnSync} from 'node:child_process'
import {lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, expect, it} from 'vitest'

import {DirRef, LongPaths, PATH_LIMIT} from '../../src/core/longpath.js'

let dir: string
let paths: LongPaths
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ckpt-longpath-'))
  paths = new LongPaths()
})
afterEach(() => {
  paths.close()
  // GNU rm copes with any depth (it walks with *at calls); fs.rmSync does not.
  spawnSync('rm', ['-rf', dir])
})

/** Builds dir/aaa.../aaa.../... to `bytes` of path; returns the deepest directory. */
function deepChain(bytes: number): Buffer {
  let abs = Buffer.from(dir)
  for (let i = 0; abs.length < bytes; i++) {
    abs = Buffer.concat([abs, Buffer.from('/' + String(i % 10).repeat(200))])
    mkdirSync(paths.short(abs))
  }
  return abs
}

it('reaches files under a path of 8 KiB, which fs alone refuses', () => {
  const deep = deepChain(8192)
  const file = Buffer.concat([deep, Buffer.from('/file')])
  expect(file.length).toBeGreaterThan(8192)
  expect(() => writeFileSync(file, 'x')).toThrow(expect.objectContaining({code: 'ENAMETOOLONG'}))
  writeFileSync(paths.short(file), 'deep data')
  expect(readFileSync(paths.short(file), 'utf8')).toBe('deep data')
  expect(lstatSync(paths.short(file)).isFile()).toBe(true)
  expect(readdirSync(paths.short(deep))).toEqual(['file'])
  // Two anchors for 8 KiB (one per PATH_LIMIT of depth), shared by everything below them.
  expect(paths.short(file).length).toBeLessThanOrEqual(PATH_LIMIT)
  expect(paths.open).toBeLessThanOrEqual(3)
})

it('finds the anchor for a deep chain of short names past PATH_LIMIT in time linear in its depth', () => {
  let abs = deepChain(PATH_LIMIT - 100)
  // 500 levels of "/xyz" past the limit: every call looks for the deepest open anchor. Looking it
  // up by each ancestor's path (a string of the path for each) took seconds here. Only the
  // lookups are timed, not the kernel's walks of the paths they return.
  let spent = 0
  const short = (p: Buffer) => {
    const started = performance.now()
    const s = paths.short(p)
    spent += performance.now() - started
    return s
  }
  while (abs.length < 1.5 * PATH_LIMIT) {
    abs = Buffer.concat([abs, Buffer.from('/xyz')])
    mkdirSync(short(abs))
    lstatSync(short(abs))
  }
  const leaf = Buffer.concat([abs, Buffer.from('/leaf')])
  writeFileSync(short(leaf), 'deep')
  expect(spent).toBeLessThan(1000)
  expect(readFileSync(paths.short(leaf), 'utf8')).toBe('deep')
  expect(paths.open).toBeLessThanOrEqual(4)
})

it('leaves short paths alone and opens nothing for them', () => {
  const p = Buffer.from(join(dir, 'x'))
  expect(paths.short(p)).toBe(p)
  expect(paths.open).toBe(0)
})

it('keeps naming the directory it opened when an ancestor is renamed', () => {
  mkdirSync(join(dir, 'a'))
  const ref = DirRef.open(join(dir, 'a'))
  try {
    renameSync(join(dir, 'a'), join(dir, 'b'))
    writeFileSync(ref.child(Buffer.from('f')), 'y')
    expect(readFileSync(join(dir, 'b', 'f'), 'utf8')).toBe('y')
    expect(readdirSync(ref.path)).toEqual(['f'])
  } finally {
    ref.close()
  }
})

it('refuses to anchor at a symlink', () => {
  mkdirSync(join(dir, 'real'))
  symlinkSync('real', join(dir, 'link'))
  expect(() => DirRef.open(join(dir, 'link'))).toThrow(/ELOOP|ENOTDIR/)
})
