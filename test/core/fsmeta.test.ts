import {lstatSync, lutimesSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {exchangePaths, fallbackTime, nsTimesAvailable, setTimesNs, syncFilesystem, writeNewFiles} from '../../src/core/fsmeta.js'

// Odd nanosecond values that a double of seconds cannot carry (one ulp is about 2^-22 s).
const ATIME = 1_600_000_000_987_654_321n
const MTIME = 1_700_000_000_123_456_789n

const times = (path: Buffer | string) => {
  const st = lstatSync(path, {bigint: true})
  return {atimeNs: st.atimeNs, mtimeNs: st.mtimeNs}
}

describe('setTimesNs', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ckpt-fsmeta-'))
  })
  afterEach(() => {
    rmSync(dir, {recursive: true, force: true})
  })

  it('uses the native addon (built by npm ci)', () => {
    expect(nsTimesAvailable()).toBe(true)
  })

  it('without the addon, fs.lutimes of the fallback time lands within a microsecond (libuv keeps whole microseconds)', () => {
    const file = join(dir, 'fallback')
    writeFileSync(file, 'x')
    // Sub-microsecond parts near 0 and 1000 ns are where a truncated double strays most.
    for (let i = 0n; i < 400n; i++) {
      const ns = 1_796_627_759_353_000_000n + i * 1_000_037n + (i % 4n) * 333n
      lutimesSync(file, fallbackTime(ns), fallbackTime(ns))
      const d = times(file).mtimeNs - ns
      expect(d < 1000n && d > -1000n, `${ns}: off by ${d} ns`).toBe(true)
    }
  })

  it('sets a regular file to the nanosecond', () => {
    const file = join(dir, 'file')
    writeFileSync(file, 'x')
    setTimesNs(file, ATIME, MTIME)
    expect(times(file)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
  })

  it('sets a directory', () => {
    const sub = join(dir, 'sub')
    mkdirSync(sub)
    setTimesNs(sub, ATIME, MTIME)
    expect(times(sub)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
  })

  it("sets a symlink's own times and leaves its target alone", () => {
    const target = join(dir, 'target')
    const link = join(dir, 'link')
    writeFileSync(target, 'x')
    const targetMtime = 1_500_000_000_000_000_001n
    setTimesNs(target, targetMtime, targetMtime)
    symlinkSync('target', link)

    setTimesNs(link, ATIME, MTIME)

    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(times(link)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
    expect(statSync(link, {bigint: true}).mtimeNs).toBe(targetMtime)
    expect(times(target).mtimeNs).toBe(targetMtime)
  })

  it('sets a dangling symlink', () => {
    const link = join(dir, 'dangling')
    symlinkSync('missing', link)
    setTimesNs(link, ATIME, MTIME)
    expect(times(link)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
  })

  // APFS refuses names that are not UTF-8; Linux file systems take any bytes but '/' and NUL.
  it.skipIf(process.platform === 'darwin')('takes a Buffer path that is not UTF-8', () => {
    const file = Buffer.concat([Buffer.from(join(dir, 'caf')), Buffer.from([0xff, 0x0a])])
    writeFileSync(file, 'x')
    setTimesNs(file, ATIME, MTIME)
    expect(times(file)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
  })

  it('takes a string path with non-ASCII characters', () => {
    const file = join(dir, 'snapshot ✓ é')
    writeFileSync(file, 'x')
    setTimesNs(file, ATIME, MTIME)
    expect(times(file)).toEqual({atimeNs: ATIME, mtimeNs: MTIME})
  })

  it('sets times before 1970 where the file system allows them', (ctx) => {
    const file = join(dir, 'old')
    writeFileSync(file, 'x')
    const before = -123_456_789_012_345_678n // 1966-02-02, with nanoseconds
    const justBefore = -1n // 1969-12-31T23:59:59.999999999Z: tv_sec -1, tv_nsec 999999999
    try {
      setTimesNs(file, justBefore, before)
    } catch (error) {
      if (['EINVAL', 'EOVERFLOW', 'ERANGE'].includes((error as NodeJS.ErrnoException).code ?? '')) {
        ctx.skip()
      }
      throw error
    }
    expect(times(file)).toEqual({atimeNs: justBefore, mtimeNs: before})
  })

  it('throws an fs-style ENOENT error for a missing path', () => {
    const missing = join(dir, 'missing')
    let error: NodeJS.ErrnoException | undefined
    try {
      setTimesNs(missing, ATIME, MTIME)
    } catch (thrown) {
      error = thrown as NodeJS.ErrnoException
    }
    expect(error).toBeInstanceOf(Error)
    expect(error).toMatchObject({code: 'ENOENT', errno: -2, syscall: 'utimensat', path: missing})
    expect(error?.message).toBe(`ENOENT: no such file or directory, utimensat '${missing}'`)
  })

  it('refuses a path with a NUL byte instead of cutting it short', () => {
    const file = join(dir, 'file')
    writeFileSync(file, 'x')
    const before = times(file)
    expect(() => setTimesNs(`${file}\0ignored`, ATIME, MTIME)).toThrow(expect.objectContaining({code: 'ERR_INVALID_ARG_VALUE'}))
    expect(() => setTimesNs(Buffer.from(`${file}\0`), ATIME, MTIME)).toThrow(expect.objectContaining({code: 'ERR_INVALID_ARG_VALUE'}))
    expect(times(file)).toEqual(before)
  })

  it('refuses times outside the signed 64-bit nanosecond range', () => {
    const file = join(dir, 'file')
    writeFileSync(file, 'x')
    expect(() => setTimesNs(file, 2n ** 63n, MTIME)).toThrow(RangeError)
  })
})

// renameat2 and syncfs are Linux calls; elsewhere both return false and the caller falls back.
describe.skipIf(process.platform !== 'linux')('exchangePaths', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ckpt-fsmeta-'))
  })
  afterEach(() => {
    rmSync(dir, {recursive: true, force: true})
  })

  const ino = (path: Buffer | string) => lstatSync(path, {bigint: true}).ino
  const thrown = (fn: () => unknown): NodeJS.ErrnoException | undefined => {
    try {
      fn()
    } catch (error) {
      return error as NodeJS.ErrnoException
    }
    return undefined
  }

  it('swaps two directories, contents and inodes', () => {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    mkdirSync(a)
    mkdirSync(b)
    writeFileSync(join(a, 'only-in-a'), 'A')
    writeFileSync(join(b, 'only-in-b'), 'B')
    mkdirSync(join(b, 'nested'))
    const [inoA, inoB] = [ino(a), ino(b)]

    expect(exchangePaths(a, b)).toBe(true)

    expect([ino(a), ino(b)]).toEqual([inoB, inoA])
    expect(readdirSync(a).sort()).toEqual(['nested', 'only-in-b'])
    expect(readdirSync(b)).toEqual(['only-in-a'])
    expect(readFileSync(join(a, 'only-in-b'), 'utf8')).toBe('B')
    expect(readFileSync(join(b, 'only-in-a'), 'utf8')).toBe('A')
  })

  it('swaps a directory with a file', () => {
    const sub = join(dir, 'sub')
    const file = join(dir, 'file')
    mkdirSync(sub)
    writeFileSync(join(sub, 'inside'), 'in')
    writeFileSync(file, 'plain')
    const [inoSub, inoFile] = [ino(sub), ino(file)]

    expect(exchangePaths(sub, file)).toBe(true)

    expect(lstatSync(sub).isFile()).toBe(true)
    expect(readFileSync(sub, 'utf8')).toBe('plain')
    expect(lstatSync(file).isDirectory()).toBe(true)
    expect(readdirSync(file)).toEqual(['inside'])
    expect([ino(sub), ino(file)]).toEqual([inoFile, inoSub])
  })

  it('throws an fs-style ENOENT error naming both paths when one is missing', () => {
    const present = join(dir, 'present')
    const missing = join(dir, 'missing')
    mkdirSync(present)
    const inoPresent = ino(present)

    const error = thrown(() => exchangePaths(present, missing))

    expect(error).toBeInstanceOf(Error)
    expect(error).toMatchObject({code: 'ENOENT', errno: -2, syscall: 'renameat2', path: present, dest: missing})
    expect(error?.message).toBe(`ENOENT: no such file or directory, renameat2 '${present}' -> '${missing}'`)
    expect(ino(present)).toBe(inoPresent)
    expect(thrown(() => exchangePaths(missing, present))).toMatchObject({code: 'ENOENT', path: missing, dest: present})
  })

  it('takes a Buffer path that is not UTF-8', () => {
    const odd = Buffer.concat([Buffer.from(join(dir, 'caf')), Buffer.from([0xff, 0x0a])])
    const plain = join(dir, 'plain')
    mkdirSync(odd)
    writeFileSync(plain, 'x')
    const [inoOdd, inoPlain] = [ino(odd), ino(plain)]

    expect(exchangePaths(odd, plain)).toBe(true)

    expect([ino(odd), ino(plain)]).toEqual([inoPlain, inoOdd])
    expect(lstatSync(odd).isFile()).toBe(true)
  })

  // The kernel answers EINVAL both for a file system without RENAME_EXCHANGE and for a directory
  // swapped with its own descendant; both mean "nothing changed, fall back", and the fallback
  // renames then fail on the second case themselves.
  it('returns false and changes nothing when the kernel refuses with EINVAL', () => {
    const parent = join(dir, 'parent')
    const child = join(parent, 'child')
    mkdirSync(child, {recursive: true})
    const [inoParent, inoChild] = [ino(parent), ino(child)]

    expect(exchangePaths(parent, child)).toBe(false)

    expect([ino(parent), ino(child)]).toEqual([inoParent, inoChild])
  })

  it('refuses a path with a NUL byte instead of cutting it short', () => {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    mkdirSync(a)
    mkdirSync(b)
    expect(() => exchangePaths(`${a}\0ignored`, b)).toThrow(expect.objectContaining({code: 'ERR_INVALID_ARG_VALUE'}))
    expect(() => exchangePaths(a, Buffer.from(`${b}\0`))).toThrow(expect.objectContaining({code: 'ERR_INVALID_ARG_VALUE'}))
  })
})

describe.skipIf(process.platform !== 'linux')('syncFilesystem', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ckpt-fsmeta-'))
  })
  afterEach(() => {
    rmSync(dir, {recursive: true, force: true})
  })

  it('flushes the file system holding a directory or a file', () => {
    writeFileSync(join(dir, 'file'), 'x')
    expect(syncFilesystem(dir)).toBe(true)
    expect(syncFilesystem(Buffer.from(join(dir, 'file')))).toBe(true)
  })

  // A wrong path is the caller's mistake, not a reason to fall back to fsync file by file.
  it('throws an fs-style ENOENT error for a missing path', () => {
    const missing = join(dir, 'missing')
    expect(() => syncFilesystem(missing)).toThrow(
      expect.objectContaining({code: 'ENOENT', errno: -2, syscall: 'open', path: missing, message: `ENOENT: no such file or directory, open '${missing}'`}),
    )
  })
})

describe('trimMemory', () => {
  it('is provided by the addon and hands freed malloc memory back without failing', async () => {
    const {trimMemory} = await import('../../src/core/fsmeta.js')
    // Allocate and drop enough native memory that malloc has something to give back.
    for (let i = 0; i < 64; i++) Buffer.allocUnsafeSlow(1 << 20).fill(i)
    expect(typeof trimMemory()).toBe('boolean')
    expect(nsTimesAvailable()).toBe(true) // the same addon is loaded, so trimMemory is the native one
  })
})

describe('writeNewFiles', () => {
  const root = process.getuid?.() === 0
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ckpt-newfiles-'))
  })
  afterEach(() => {
    rmSync(dir, {recursive: true, force: true})
  })

  it('creates each file with its bytes, mode and nanosecond times; owner too as root', async () => {
    const pieces = Array.from({length: 150}, (_, i) => Buffer.from(`piece ${i};`))
    const files = [
      {path: Buffer.from(join(dir, 'many-pieces')), parts: pieces, mode: 0o640, uid: 1234, gid: 4321, mtimeNs: 1_700_000_000_123_456_789n},
      {path: Buffer.from(join(dir, 'empty')), parts: [], mode: 0o600, uid: 0, gid: 0, mtimeNs: -1n},
      {path: Buffer.concat([Buffer.from(join(dir, 'odd-')), Buffer.from([0xff, 0xfe, 0x0a])]), parts: [Buffer.alloc(3 << 20, 7), Buffer.from('tail')], mode: 0o4755, uid: 1234, gid: 4321, mtimeNs: 0n},
    ]
    expect(await writeNewFiles(files, root)).toBe(true)
    for (const f of files) {
      const st = statSync(f.path, {bigint: true})
      expect(readFileSync(f.path).equals(Buffer.concat(f.parts))).toBe(true)
      expect(Number(st.mode) & 0o7777).toBe(f.mode)
      expect(st.mtimeNs).toBe(f.mtimeNs)
      expect(st.atimeNs).toBe(f.mtimeNs)
      if (root) expect([Number(st.uid), Number(st.gid)]).toEqual([f.uid, f.gid])
    }
  })

  it('never writes through an existing file or symlink: fails with an fs error and leaves the rest alone', async () => {
    writeFileSync(join(dir, 'exists'), 'keep me')
    symlinkSync(join(dir, 'exists'), join(dir, 'link'))
    for (const taken of ['exists', 'link']) {
      const files = [
        {path: Buffer.from(join(dir, `before-${taken}`)), parts: [Buffer.from('a')], mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n},
        {path: Buffer.from(join(dir, taken)), parts: [Buffer.from('overwritten')], mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n},
        {path: Buffer.from(join(dir, `after-${taken}`)), parts: [Buffer.from('c')], mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n},
      ]
      const err = (await writeNewFiles(files, false).catch((e: unknown) => e)) as NodeJS.ErrnoException
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('EEXIST')
      expect(err.syscall).toBe('open')
      expect(err.path).toBe(join(dir, taken))
      expect(err.message).toMatch(/^EEXIST: file already exists, open '/)
      expect(readFileSync(join(dir, 'exists'), 'utf8')).toBe('keep me')
      expect(readFileSync(join(dir, `before-${taken}`), 'utf8')).toBe('a')
      expect(readdirSync(dir)).not.toContain(`after-${taken}`)
    }
    expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true)
  })

  it('reports a missing directory as ENOENT from open', async () => {
    const err = (await writeNewFiles([{path: Buffer.from(join(dir, 'no-such-dir', 'f')), parts: [], mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n}], false).catch((e: unknown) => e)) as NodeJS.ErrnoException
    expect(err.code).toBe('ENOENT')
    expect(err.syscall).toBe('open')
  })
})
