import {describe, expect, it} from 'vitest'

import {type EntryType, isRacy, planCapture, type ReadRecord, type StatRecord} from '../../src/live/plan.js'

// Times in ms since an epoch, plus 123 µs so that they are not whole seconds (not "coarse").
const T = (ms: number): bigint => BigInt(ms) * 1_000_000n + 123_000n
const SEC = 1_000_000_000n

interface Spec {
  size?: number
  m?: number // mtime, ms
  c?: number // ctime, ms (default: m)
  ino?: number
  type?: EntryType
}

// Every file was last modified at 1000 ms and read at 5000 ms unless a test says otherwise.
const st = (path: string, s: Spec = {}): StatRecord => ({
  path, type: s.type ?? 'file', size: BigInt(s.size ?? 10), mtimeNs: T(s.m ?? 1000), ctimeNs: T(s.c ?? s.m ?? 1000), ino: BigInt(s.ino ?? hashIno(path)),
})
const rd = (path: string, s: Spec & {read?: number} = {}): ReadRecord => ({...st(path, s), readNs: T(s.read ?? 5000)})
function hashIno(path: string): number {
  let h = 7
  for (const ch of path) h = (h * 31 + ch.charCodeAt(0)) % 1_000_003
  return h
}

const dir = (path: string, s: Spec = {}): StatRecord => st(path, {...s, type: 'dir'})
const rdir = (path: string, s: Spec & {read?: number} = {}): ReadRecord => rd(path, {...s, type: 'dir'})

describe('planCapture: what the pause must copy', () => {
  it.each<[string, ReadRecord[], StatRecord[], {path: string; use: string}[], Partial<ReturnType<typeof planCapture>>]>([
    ['nothing moved: nothing to copy',
      [rdir(''), rd('a'), rd('b')], [dir(''), st('a'), st('b')], [],
      {copy: [], moved: [], removed: [], unchanged: 2, copyBytes: 0n}],
    ['a file rewritten in place (size, mtime)',
      [rd('a'), rd('b')], [st('a', {size: 20, m: 6000}), st('b')], [],
      {copy: [{path: 'a', type: 'file', size: 20n, reasons: ['changed', 'racy']}], unchanged: 1, copyBytes: 20n}],
    ['only ctime moved (chmod, a hard link)',
      [rd('a')], [st('a', {c: 4000})], [],
      {copy: [{path: 'a', type: 'file', size: 10n, reasons: ['changed']}]}],
    ['same stat but modified within 50 ms of its read: racy',
      [rd('a', {m: 4960, read: 5000}), rd('b', {m: 4940, read: 5000})], [st('a', {m: 4960}), st('b', {m: 4940})], [],
      {copy: [{path: 'a', type: 'file', size: 10n, reasons: ['racy']}], unchanged: 1}],
    ['a file created during the pre-copy',
      [rd('a')], [st('a'), st('new', {size: 5, m: 6000})], [],
      {copy: [{path: 'new', type: 'file', size: 5n, reasons: ['appeared']}], unchanged: 1}],
    ['a file deleted during the pre-copy',
      [rd('a'), rd('gone')], [st('a')], [],
      {copy: [], removed: ['gone'], unchanged: 1}],
    ['rename over (temp + rename): the content read as the temp file is reused',
      [rd('db'), rd('db.tmp', {ino: 77, size: 30, m: 2000})], [st('db', {ino: 77, size: 30, m: 2000, c: 3000})], [],
      {copy: [], moved: [{from: 'db.tmp', to: 'db'}], removed: [], unchanged: 0}],
    ['rename over of a file still being written after the read: copied',
      [rd('db'), rd('db.tmp', {ino: 77, size: 30, m: 2000})], [st('db', {ino: 77, size: 40, m: 5500})], [],
      {copy: [{path: 'db', type: 'file', size: 40n, reasons: ['renamed'], from: 'db.tmp'}], moved: [], removed: []}],
    ['rename of a file read in its racy window: copied',
      [rd('x', {ino: 5, m: 4990, read: 5000})], [st('y', {ino: 5, m: 4990})], [],
      {copy: [{path: 'y', type: 'file', size: 10n, reasons: ['renamed'], from: 'x'}], removed: []}],
    ['open for writing or mapped: copied whatever the stat says',
      [rd('wal'), rd('shm'), rd('quiet')], [st('wal'), st('shm'), st('quiet')], [{path: 'wal', use: 'write'}, {path: 'shm', use: 'mmap'}, {path: 'shm', use: 'write'}, {path: 'quiet', use: 'read'}],
      {copy: [{path: 'shm', type: 'file', size: 10n, reasons: ['mapped', 'written']}, {path: 'wal', type: 'file', size: 10n, reasons: ['written']}], unchanged: 1}],
    ['a writer holding a file the pause cannot see (excluded): ignored',
      [rd('a')], [st('a')], [{path: 'excluded.log', use: 'write'}],
      {copy: [], unchanged: 1}],
    ['a file replaced by a directory, and directories whose times moved',
      [rdir(''), rd('x'), rdir('d')], [dir('', {m: 7000}), dir('x', {ino: 99}), dir('d', {m: 7000})], [],
      {copy: [], removed: [], unchanged: 0}],
    ['a symlink retargeted',
      [rd('l', {type: 'symlink', size: 3})], [st('l', {type: 'symlink', size: 4, m: 6000})], [],
      {copy: [{path: 'l', type: 'symlink', size: 0n, reasons: ['changed', 'racy']}]}],
  ])('%s', (_name, read, paused, writers, expected) => {
    expect(planCapture(read, paused, writers)).toMatchObject(expected)
  })

  it('takes writers as a map too', () => {
    const plan = planCapture([rd('a')], [st('a')], new Map([['a', 'mmap' as const]]))
    expect(plan.copy).toEqual([{path: 'a', type: 'file', size: 10n, reasons: ['mapped']}])
  })

  it('sorts what it reports by path, bytewise', () => {
    const plan = planCapture([], [st('b'), st('a/z'), st('B'), st('a')], [])
    expect(plan.copy.map((c) => c.path)).toEqual(['B', 'a', 'a/z', 'b'])
  })
})

describe('isRacy', () => {
  it.each([
    ['modified long before the read', T(1000), T(1000), T(5000), false],
    ['modified 49 ms before the read', T(4951), T(4951), T(5000), true],
    ['modified after the read', T(6000), T(6000), T(5000), true],
    ['only ctime recent', T(1000), T(4990), T(5000), true],
    ['whole seconds, 1.5 s before the read: coarse window', 3n * SEC, 3n * SEC, T(4500), true],
    ['whole seconds, 3 s before the read', 1n * SEC, 1n * SEC, T(4500), false],
  ])('%s', (_name, mtimeNs, ctimeNs, readNs, racy) => {
    expect(isRacy({path: 'f', type: 'file', size: 1n, ino: 1n, mtimeNs, ctimeNs}, readNs)).toBe(racy)
  })

  it('takes the windows as options', () => {
    const s = st('f', {m: 4900})
    expect(isRacy(s, T(5000))).toBe(false)
    expect(isRacy(s, T(5000), {windowNs: 200_000_000n})).toBe(true)
  })
})

