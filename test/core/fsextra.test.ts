// The addon's xattr, extent, flag and mknod calls on real files: a tmpfs the test mounts (user
// xattrs with values up to the kernel's 64 KiB, ACLs, SEEK_DATA, chattr flags) and /tmp.
import {spawnSync} from 'node:child_process'
import {closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync, writeSync, ftruncateSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {boundExtents, dataExtents, makeNode, readFlags, readFlagsFd, readXattrs, removeXattr, splitDev, writeFlags, writeXattr, xattrKind} from '../../src/core/fsextra.js'
import {mountTmpfs, unmount} from '../helpers/tmpfs.js'

const FS_NODUMP_FL = 0x40

let dir: string
let mounted = false
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ckpt-fsextra-'))
  const m = mountTmpfs(dir, 64 * 1024 * 1024)
  if (!m.ok) throw new Error(m.reason)
  mounted = true
})
afterAll(() => {
  if (mounted) unmount(dir)
  rmSync(dir, {recursive: true, force: true})
})

describe('xattrs', () => {
  it('lists binary values, sorted by name, and at the kernel limits (name 255 bytes, value 64 KiB)', () => {
    const file = join(dir, 'x')
    writeFileSync(file, 'x')
    const longName = Buffer.from('user.' + 'n'.repeat(250))
    const big = Buffer.alloc(65536)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff
    const binary = Buffer.from([0, 255, 0, 10, 13, 0])
    expect(writeXattr(file, Buffer.from('user.b'), binary)).toBe('ok')
    expect(writeXattr(file, longName, big)).toBe('ok')
    expect(writeXattr(file, Buffer.from('user.a'), Buffer.alloc(0))).toBe('ok')
    const got = readXattrs(file)
    if (typeof got === 'string') throw new Error(got)
    expect(got.refused).toEqual([])
    expect(got.xattrs.map((x) => x.name.toString())).toEqual(['user.a', 'user.b', longName.toString()])
    expect(got.xattrs[0]!.value.length).toBe(0)
    expect(got.xattrs[1]!.value.equals(binary)).toBe(true)
    expect(got.xattrs[2]!.value.equals(big)).toBe(true)
    expect(removeXattr(file, Buffer.from('user.b'))).toBe('ok')
    const after = readXattrs(file)
    if (typeof after === 'string') throw new Error(after)
    expect(after.xattrs.map((x) => x.name.toString())).toEqual(['user.a', longName.toString()])
  })

  it('reads an ACL set by setfacl as system.posix_acl_access, and writes it back so getfacl agrees', () => {
    const file = join(dir, 'acl')
    const copy = join(dir, 'acl-copy')
    writeFileSync(file, 'x')
    writeFileSync(copy, 'x')
    const set = spawnSync('setfacl', ['-m', 'u:nobody:rw,g:daemon:r', file], {encoding: 'utf8'})
    expect(set.status, set.stderr).toBe(0)
    const got = readXattrs(file)
    if (typeof got === 'string') throw new Error(got)
    const acl = got.xattrs.find((x) => x.name.toString() === 'system.posix_acl_access')
    expect(acl).toBeDefined()
    expect(xattrKind(acl!.name)).toBe('acl')
    expect(writeXattr(copy, acl!.name, acl!.value)).toBe('ok')
    const show = (p: string) => spawnSync('getfacl', ['--omit-header', '--absolute-names', p], {encoding: 'utf8'}).stdout
    expect(show(copy)).toBe(show(file))
    expect(show(copy)).toContain('user:nobody:rw-')
  })

  it('does not follow a final symlink', () => {
    const target = join(dir, 'target')
    writeFileSync(target, 'x')
    writeXattr(target, Buffer.from('user.t'), Buffer.from('v'))
    symlinkSync('target', join(dir, 'link'))
    const got = readXattrs(join(dir, 'link'))
    if (typeof got === 'string') throw new Error(got)
    expect(got.xattrs.some((x) => x.name.toString() === 'user.t')).toBe(false)
  })

  it('reads a name list and values longer than the first buffers (1 KiB, 4 KiB)', () => {
    const file = join(dir, 'many')
    writeFileSync(file, 'x')
    const names = Array.from({length: 12}, (_, i) => Buffer.from(`user.${String(i).padStart(2, '0')}${'m'.repeat(190)}`))
    names.forEach((n, i) => expect(writeXattr(file, n, Buffer.alloc(5000 + i, i))).toBe('ok'))
    const got = readXattrs(file)
    if (typeof got === 'string') throw new Error(got)
    expect(got.xattrs.map((x) => x.name)).toEqual(names)
    got.xattrs.forEach((x, i) => expect(x.value.equals(Buffer.alloc(5000 + i, i))).toBe(true))
  })

  it('throws fs errors for a missing path, and tells an unsupported file system apart', () => {
    expect(() => readXattrs(join(dir, 'missing'))).toThrow(expect.objectContaining({code: 'ENOENT', syscall: 'llistxattr'}))
    // /proc has no user xattrs: setting one is refused as unsupported, not thrown.
    expect(writeXattr('/proc/self/status', Buffer.from('user.x'), Buffer.from('v'))).toBe('unsupported')
    expect(xattrKind(Buffer.from('trusted.foo'))).toBe('trusted')
  })
})

describe('dataExtents', () => {
  it('finds the data regions of a sparse file, and none in a file that is all hole', () => {
    const file = join(dir, 'sparse')
    const fd = openSync(file, 'w+')
    try {
      ftruncateSync(fd, 64 * 1024 * 1024)
      writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 1024 * 1024)
      writeSync(fd, Buffer.alloc(8192, 2), 0, 8192, 32 * 1024 * 1024)
      expect(dataExtents(fd)).toEqual([{offset: 1024 * 1024, length: 4096}, {offset: 32 * 1024 * 1024, length: 8192}])
    } finally {
      closeSync(fd)
    }
    const empty = join(dir, 'hole')
    const fd2 = openSync(empty, 'w+')
    try {
      ftruncateSync(fd2, 1 << 20)
      expect(dataExtents(fd2)).toEqual([])
    } finally {
      closeSync(fd2)
    }
  })

  it('reports a dense file as one region', () => {
    const file = join(tmpdir(), `ckpt-dense-${process.pid}`)
    writeFileSync(file, Buffer.alloc(100_000, 7))
    const fd = openSync(file, 'r')
    try {
      expect(dataExtents(fd)).toEqual([{offset: 0, length: 100_000}])
    } finally {
      closeSync(fd)
      rmSync(file)
    }
  })

  it('bounds the count by filling the smallest holes', () => {
    const e = [{offset: 0, length: 10}, {offset: 11, length: 10}, {offset: 100, length: 10}, {offset: 112, length: 10}]
    expect(boundExtents(e, 4)).toEqual(e)
    expect(boundExtents(e, 2)).toEqual([{offset: 0, length: 21}, {offset: 100, length: 22}])
    expect(boundExtents(e, 1)).toEqual([{offset: 0, length: 122}])
  })
})

describe('inode flags', () => {
  it('reads and sets nodump on a file and a directory', () => {
    const file = join(dir, 'flags')
    writeFileSync(file, 'x')
    const sub = join(dir, 'flagdir')
    mkdirSync(sub)
    for (const [p, isDir] of [[file, false], [sub, true]] as const) {
      const before = readFlags(p, isDir)
      if (typeof before === 'string') throw new Error(before)
      expect(before & FS_NODUMP_FL).toBe(0)
      expect(writeFlags(p, isDir, before | FS_NODUMP_FL)).toBe('ok')
      expect(readFlags(p, isDir)).toBe(before | FS_NODUMP_FL)
      const lsattr = spawnSync('lsattr', ['-d', p], {encoding: 'utf8'}).stdout
      expect(lsattr.split(' ')[0]).toContain('d')
    }
    const fd = openSync(file, 'r')
    try {
      expect((readFlagsFd(fd) as number) & FS_NODUMP_FL).toBe(FS_NODUMP_FL)
    } finally {
      closeSync(fd)
    }
  })

  it('never opens a FIFO or follows a symlink, and says unsupported where there are none', () => {
    const fifo = join(dir, 'flagfifo')
    expect(makeNode(fifo, 'fifo', 0o600)).toBe('ok')
    expect(readFlags(fifo, false)).toBe('unsupported')
    symlinkSync('flags', join(dir, 'flaglink'))
    expect(() => readFlags(join(dir, 'flaglink'), false)).toThrow(expect.objectContaining({code: 'ELOOP'}))
    expect(readFlags('/proc/self/status', false)).toBe('unsupported')
  })
})

describe('makeNode', () => {
  it('makes a FIFO and a character device with the numbers asked for', () => {
    const fifo = join(dir, 'fifo')
    expect(makeNode(fifo, 'fifo', 0o640)).toBe('ok')
    const st = lstatSync(fifo, {bigint: true})
    expect(st.isFIFO()).toBe(true)
    expect(Number(st.mode & 0o7777n)).toBe(0o640 & ~process.umask())
    if (process.getuid?.() !== 0) return
    const dev = join(dir, 'null')
    expect(makeNode(dev, 'chardev', 0o666, 1, 3)).toBe('ok')
    const d = lstatSync(dev, {bigint: true})
    expect(d.isCharacterDevice()).toBe(true)
    expect(splitDev(d.rdev)).toEqual({major: 1, minor: 3})
    const blk = join(dir, 'blk')
    expect(makeNode(blk, 'blockdev', 0o600, 259, 300_000)).toBe('ok')
    expect(splitDev(lstatSync(blk, {bigint: true}).rdev)).toEqual({major: 259, minor: 300_000})
    expect(() => makeNode(blk, 'fifo', 0o600)).toThrow(expect.objectContaining({code: 'EEXIST'}))
  })
})
