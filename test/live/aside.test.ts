import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {Aside} from '../../src/live/aside.js'
import {tempDir} from './helpers.js'

const base = tempDir()
afterAll(() => rmSync(base, {recursive: true, force: true}))

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

const contentOf = (c: {data?: Buffer; file?: string}): Buffer => c.data ?? readFileSync(c.file!)

describe('copies aside on a filesystem without reflinks', () => {
  it('holds copies in memory up to the bound, then stages them; symlinks by target; gone files noted', () => {
    const src = path.join(base, 'src')
    const staging = path.join(base, 'staging')
    mkdirSync(src)
    mkdirSync(staging)
    writeFileSync(path.join(src, 'a'), bytes(600, 1))
    writeFileSync(path.join(src, 'b'), bytes(600, 2))
    symlinkSync('a', path.join(src, 'l'))
    const aside = new Aside({stagingDir: staging, memoryBytes: 1000})
    const a = aside.copy(path.join(src, 'a'), 'a')
    const b = aside.copy(path.join(src, 'b'), 'b')
    const l = aside.copy(path.join(src, 'l'), 'l')
    const gone = aside.copy(path.join(src, 'nope'), 'nope')
    expect([a.kind, b.kind, l.kind, gone.kind]).toEqual(['memory', 'staged', 'symlink', 'gone'])
    // The copies are of the moment they were made, whatever happens to the files after.
    writeFileSync(path.join(src, 'a'), 'changed')
    writeFileSync(path.join(src, 'b'), 'changed')
    expect(contentOf(a)).toEqual(bytes(600, 1))
    expect(contentOf(b)).toEqual(bytes(600, 2))
    expect(l.data!.toString()).toBe('a')
    expect(aside.totals()).toEqual({reflink: 0, memory: 600, staged: 600, symlink: 1, gone: 0})
    const stagedFile = b.file!
    aside.dispose()
    expect(existsSync(stagedFile)).toBe(false)
  })
})

describe('the way each copy goes', () => {
  it('keeps small files in memory and has the kernel copy large ones', () => {
    const src = path.join(base, 'src2')
    mkdirSync(src)
    writeFileSync(path.join(src, 'small'), bytes(256 * 1024 - 1, 5))
    writeFileSync(path.join(src, 'large'), bytes(256 * 1024, 6))
    const aside = new Aside({stagingDir: base, reflink: false})
    expect(aside.copy(path.join(src, 'small'), 'small').kind).toBe('memory')
    const large = aside.copy(path.join(src, 'large'), 'large')
    expect(large.kind).toBe('staged')
    expect(contentOf(large)).toEqual(bytes(256 * 1024, 6))
    aside.dispose()
  })
})

// A loop-mounted XFS image (root, with xfsprogs): where reflinks exist, a copy costs no bytes.
const xfs = path.join(base, 'xfs')
let mounted = false
beforeAll(() => {
  const image = path.join(base, 'xfs.img')
  try {
    writeFileSync(image, '')
    execFileSync('truncate', ['-s', '320M', image])
    execFileSync('mkfs.xfs', ['-q', image])
    mkdirSync(xfs)
    execFileSync('mount', ['-o', 'loop', image, xfs], {stdio: 'ignore', timeout: 20_000})
    mounted = true
  } catch {
    // no loop devices or no xfsprogs here: the test below is skipped
  }
})
afterAll(() => {
  if (mounted) execFileSync('umount', [xfs])
})

describe('copies aside on a filesystem with reflinks', () => {
  it('clones instead of copying, and the clone keeps the bytes of the moment', (ctx) => {
    if (!mounted) ctx.skip()
    const src = path.join(xfs, 'src')
    const staging = path.join(xfs, 'staging')
    mkdirSync(src)
    mkdirSync(staging)
    writeFileSync(path.join(src, 'big'), bytes(4 << 20, 3))
    const aside = new Aside({stagingDir: staging, memoryBytes: 0})
    const c = aside.copy(path.join(src, 'big'), 'big')
    expect(c.kind).toBe('reflink')
    writeFileSync(path.join(src, 'big'), bytes(4 << 20, 4)) // rewritten in place after the copy
    expect(contentOf(c).equals(bytes(4 << 20, 3))).toBe(true)
    unlinkSync(path.join(src, 'big'))
    expect(contentOf(c).length).toBe(4 << 20)
    aside.dispose()
  })
})
