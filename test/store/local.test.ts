import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, test} from 'vitest'
import {IntegrityError, ObjectMissingError, UsageError} from '../../src/core/errors.js'
import {OBJECT_KINDS, type ObjectInfo, type ObjectKind} from '../../src/store/backend.js'
import {atomicWriteFile} from '../../src/core/durable.js'
import {checkRepositoryPath, LocalBackend, SYNC_READ_MAX, TEMP_PREFIX} from '../../src/store/local.js'
import {tempName} from '../../src/store/temp.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

const NAME_A = 'ab' + '0'.repeat(62)
const NAME_B = 'ab' + '1'.repeat(62)
const NAME_C = 'ff' + '2'.repeat(62)

let root: string
let repo: string
let backend: LocalBackend

beforeEach(async () => {
  root = await tempDir('ckpt-local-')
  repo = path.join(root, 'repo')
  backend = new LocalBackend(repo)
  await backend.initLayout()
})
afterEach(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

async function listNames(kind: ObjectKind): Promise<string[]> {
  const names: string[] = []
  for await (const o of backend.list(kind)) names.push(o.name)
  return names.sort()
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => {
    throw new Error('expected a rejection')
  }, (err: unknown) => err)
}

async function tempFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = []
  for (const entry of await fsp.readdir(dir, {recursive: true})) {
    if (path.basename(entry).startsWith(TEMP_PREFIX)) found.push(entry)
  }
  return found
}

describe('LocalBackend', () => {
  test('initLayout lays out every kind and the data fan-out, idempotently', async () => {
    const top = (await fsp.readdir(repo)).sort()
    expect(top).toEqual(['data', 'index', 'locks', 'pins', 'snapshots'])
    const fan = (await fsp.readdir(path.join(repo, 'data'))).sort()
    expect(fan.length).toBe(256)
    expect(fan[0]).toBe('00')
    expect(fan[255]).toBe('ff')
    await backend.initLayout()
    expect((await fsp.readdir(repo)).sort()).toEqual(top)
    expect(backend.location).toBe(repo)
  })

  test('a data object name that does not start with two hex digits is refused (list could not find it)', async () => {
    await expect(backend.put('data', 'ZZtop', Buffer.from('x'))).rejects.toThrow(/invalid data object name/)
    await expect(backend.create('data', 'zz00')).rejects.toThrow(/invalid data object name/)
  })

  test('put, get, stat, list and delete for every kind', async () => {
    for (const kind of OBJECT_KINDS) {
      const name = kind === 'config' ? 'config' : NAME_A
      const data = seededBytes(1000 + kind.length, kind.length)
      await backend.put(kind, name, data)
      expect((await backend.get(kind, name)).equals(data)).toBe(true)
      const st = await backend.stat(kind, name)
      expect(st.name).toBe(name)
      expect(st.size).toBe(data.length)
      expect(Math.abs(st.mtimeMs - Date.now())).toBeLessThan(60_000)
      const listed: ObjectInfo[] = []
      for await (const o of backend.list(kind)) listed.push(o)
      expect(listed).toEqual([st])
      await backend.delete(kind, name)
      expect(await caught(backend.get(kind, name))).toBeInstanceOf(ObjectMissingError)
      expect(await listNames(kind)).toEqual([])
    }
  })

  test('on-disk layout: config at the top, data fanned out by the first two characters', async () => {
    await backend.put('config', 'ignored', Buffer.from('cfg'))
    await backend.put('data', NAME_C, Buffer.from('d'))
    await backend.put('index', NAME_C, Buffer.from('i'))
    expect(await fsp.readFile(path.join(repo, 'config'), 'utf8')).toBe('cfg')
    expect(await fsp.readFile(path.join(repo, 'data', 'ff', NAME_C), 'utf8')).toBe('d')
    expect(await fsp.readFile(path.join(repo, 'index', NAME_C), 'utf8')).toBe('i')
    // Objects are immutable: written read-only.
    expect((await fsp.stat(path.join(repo, 'data', 'ff', NAME_C))).mode & 0o777).toBe(0o444)
  })

  test('list returns each object of a kind once, and nothing of other kinds', async () => {
    await backend.put('data', NAME_A, Buffer.from('a'))
    await backend.put('data', NAME_B, Buffer.from('bb'))
    await backend.put('data', NAME_C, Buffer.from('ccc'))
    await backend.put('snapshots', 'snap1', Buffer.from('s'))
    expect(await listNames('data')).toEqual([NAME_A, NAME_B, NAME_C])
    expect(await listNames('snapshots')).toEqual(['snap1'])
    expect(await listNames('index')).toEqual([])
    expect(await listNames('config')).toEqual([])
    const sizes: Record<string, number> = {}
    for await (const o of backend.list('data')) sizes[o.name] = o.size
    expect(sizes).toEqual({[NAME_A]: 1, [NAME_B]: 2, [NAME_C]: 3})
  })

  test('put of a list of buffers writes them back to back (more than one writev batch)', async () => {
    const parts = Array.from({length: 1500}, (_, i) => seededBytes(i % 7, i + 1))
    await backend.put('data', NAME_A, parts)
    expect((await backend.get('data', NAME_A)).equals(Buffer.concat(parts))).toBe(true)
    await backend.put('index', NAME_A, [])
    expect((await backend.get('index', NAME_A)).length).toBe(0)
  })

  test('put replaces an existing object whole', async () => {
    await backend.put('locks', 'l1', Buffer.from('first version, longer'))
    await backend.put('locks', 'l1', Buffer.from('second'))
    expect((await backend.get('locks', 'l1')).toString()).toBe('second')
    expect(await listNames('locks')).toEqual(['l1'])
    expect(await tempFilesUnder(repo)).toEqual([])
  })

  test('put recreates a missing kind directory', async () => {
    await fsp.rm(path.join(repo, 'pins'), {recursive: true})
    await fsp.rm(path.join(repo, 'data', 'ab'), {recursive: true})
    await backend.put('pins', 'p1', Buffer.from('pin'))
    await backend.put('data', NAME_A, Buffer.from('data'))
    expect((await backend.get('pins', 'p1')).toString()).toBe('pin')
    expect((await backend.get('data', NAME_A)).toString()).toBe('data')
  })

  test('ranged get', async () => {
    const data = seededBytes(10_000, 3)
    await backend.put('data', NAME_A, data)
    expect((await backend.get('data', NAME_A, {offset: 0, length: 10})).equals(data.subarray(0, 10))).toBe(true)
    expect((await backend.get('data', NAME_A, {offset: 1234, length: 5678})).equals(data.subarray(1234, 1234 + 5678))).toBe(true)
    expect((await backend.get('data', NAME_A, {offset: 9000, length: 1000})).equals(data.subarray(9000))).toBe(true)
    expect((await backend.get('data', NAME_A, {offset: 10_000, length: 0})).length).toBe(0)
  })

  test('reads up to SYNC_READ_MAX (synchronous) and above it (asynchronous) agree: bytes, into, truncation, missing', async () => {
    const data = seededBytes(3 * SYNC_READ_MAX, 7)
    await backend.put('data', NAME_A, data)
    await backend.put('index', NAME_B, data.subarray(0, SYNC_READ_MAX))
    for (const length of [1, SYNC_READ_MAX, SYNC_READ_MAX + 1, 2 * SYNC_READ_MAX]) {
      const offset = 1000
      expect((await backend.get('data', NAME_A, {offset, length})).equals(data.subarray(offset, offset + length))).toBe(true)
      const into = Buffer.alloc(length + 5)
      const got = await backend.get('data', NAME_A, {offset, length}, into)
      expect(got.buffer).toBe(into.buffer)
      expect(got.equals(data.subarray(offset, offset + length))).toBe(true)
      const past = await caught(backend.get('data', NAME_A, {offset: data.length - length + 1, length}))
      expect((past as IntegrityError).message).toBe(`data object ${NAME_A} is truncated: wanted bytes ${data.length - length + 1}..${data.length + 1}, it ends at ${data.length}`)
    }
    // Whole objects: a small one (synchronous) and a large one (asynchronous).
    expect((await backend.get('index', NAME_B)).equals(data.subarray(0, SYNC_READ_MAX))).toBe(true)
    expect((await backend.get('data', NAME_A)).equals(data)).toBe(true)
    expect(await caught(backend.get('data', NAME_C, {offset: 0, length: 2 * SYNC_READ_MAX}))).toBeInstanceOf(ObjectMissingError)
    await expect(backend.get('data', NAME_A, {offset: 0, length: 10}, Buffer.alloc(9))).rejects.toThrow(RangeError)
  })

  test('a range past the end is an IntegrityError, never a short read', async () => {
    await backend.put('data', NAME_A, seededBytes(100, 3))
    const err = await caught(backend.get('data', NAME_A, {offset: 90, length: 11}))
    expect(err).toBeInstanceOf(IntegrityError)
    expect((err as IntegrityError).message).toBe(`data object ${NAME_A} is truncated: wanted bytes 90..101, it ends at 100`)
    expect((err as IntegrityError).data).toEqual({kind: 'data', name: NAME_A})
    const beyond = await caught(backend.get('data', NAME_A, {offset: 200, length: 1}))
    expect((beyond as IntegrityError).message).toBe(`data object ${NAME_A} is truncated: wanted bytes 200..201, it ends at 200`)
  })

  test('a missing object is ObjectMissingError for get, ranged get and stat', async () => {
    for (const p of [backend.get('data', NAME_A), backend.get('data', NAME_A, {offset: 0, length: 1}), backend.stat('data', NAME_A)]) {
      const err = await caught(p)
      expect(err).toBeInstanceOf(ObjectMissingError)
      expect((err as ObjectMissingError).message).toBe(`data object ${NAME_A} is missing`)
      expect((err as ObjectMissingError).data).toEqual({kind: 'data', name: NAME_A})
      expect((err as ObjectMissingError).exitCode).toBe(12)
    }
    expect(await caught(backend.stat('config', 'config'))).toBeInstanceOf(ObjectMissingError)
  })

  test('delete of a missing object succeeds', async () => {
    await backend.delete('data', NAME_A)
    await backend.delete('snapshots', 'nothing')
    expect(await listNames('data')).toEqual([])
  })

  test.each(['', '../escape', 'a/b', 'a.b', '.tmp-123', 'x'.repeat(129), 'with space', 'ümlaut', '..'])('invalid name %j is refused', async (name) => {
    for (const p of [backend.put('index', name, Buffer.from('x')), backend.get('index', name), backend.stat('snapshots', name), backend.delete('locks', name), backend.put('data', name, Buffer.from('x'))]) {
      const err = await caught(p)
      expect(err).toBeInstanceOf(IntegrityError)
      expect((err as Error).message).toMatch(/^invalid object name /)
    }
    expect(await tempFilesUnder(repo)).toEqual([])
    expect(await fsp.readdir(root)).toEqual(['repo'])
  })

  test('temp files and other stray entries are never listed', async () => {
    await backend.put('snapshots', 'real', Buffer.from('r'))
    await fsp.writeFile(path.join(repo, 'snapshots', `${TEMP_PREFIX}0123456789abcdef`), 'partial')
    await fsp.writeFile(path.join(repo, 'data', 'ab', `${TEMP_PREFIX}0123456789abcdef`), 'partial')
    await fsp.writeFile(path.join(repo, 'snapshots', 'bad.name'), 'x')
    await fsp.mkdir(path.join(repo, 'snapshots', 'subdir'))
    expect(await listNames('snapshots')).toEqual(['real'])
    expect(await listNames('data')).toEqual([])
  })

  test('list of a kind whose directory is missing is empty', async () => {
    await fsp.rm(path.join(repo, 'pins'), {recursive: true})
    expect(await listNames('pins')).toEqual([])
  })

  test('temporaries() lists temp files of every directory with size and owner; removeTemporary takes only those', async () => {
    const owned = tempName({host: 'a1b2c3d4e5f6', pid: 4242, pidStart: 777})
    const files = [path.join(repo, `${TEMP_PREFIX}0123456789abcdef`), path.join(repo, 'index', owned), path.join(repo, 'data', '7f', owned)]
    for (const [i, f] of files.entries()) await fsp.writeFile(f, Buffer.alloc(10 * (i + 1)))
    await fsp.writeFile(path.join(repo, 'index', 'real'), 'x')
    const found = []
    for await (const t of backend.temporaries()) found.push(t)
    found.sort((x, y) => x.size - y.size)
    expect(found.map((t) => [t.id, t.size, t.owner])).toEqual([
      [`${TEMP_PREFIX}0123456789abcdef`, 10, undefined],
      [`index/${owned}`, 20, {host: 'a1b2c3d4e5f6', pid: 4242, pidStart: 777}],
      [`data/7f/${owned}`, 30, {host: 'a1b2c3d4e5f6', pid: 4242, pidStart: 777}],
    ])
    for (const bad of ['index/real', '../outside/.tmp-x', 'config', 'index/../../.tmp-x']) await expect(backend.removeTemporary(bad)).rejects.toThrow(/not a temporary object/)
    for (const t of found) await backend.removeTemporary(t.id)
    await backend.removeTemporary(found[0]!.id) // missing: success
    for (const f of files) await expect(fsp.access(f)).rejects.toThrow()
    await fsp.access(path.join(repo, 'index', 'real'))
  })

  test('a write that fails (a directory where the target is) leaves no temp file', async () => {
    await fsp.mkdir(path.join(repo, 'snapshots', 'occupied'))
    await expect(backend.put('snapshots', 'occupied', Buffer.from('x'))).rejects.toThrow()
    const w = await backend.create('index', 'occupied2')
    await fsp.mkdir(path.join(repo, 'index', 'occupied2'))
    await w.write(Buffer.from('abc'), 0)
    await expect(w.commit()).rejects.toThrow()
    expect(await tempFilesUnder(repo)).toEqual([])
  })
})

describe('LocalBackend.create (streamed writes)', () => {
  test('pieces written at their positions, in any order, appear whole at commit and not before', async () => {
    const data = seededBytes(100_000, 4)
    const w = await backend.create('data', NAME_A)
    await Promise.all([
      w.write(data.subarray(60_000), 60_000),
      w.write(data.subarray(0, 1), 0),
      w.write(data.subarray(1, 60_000), 1),
    ])
    expect(await listNames('data')).toEqual([])
    expect(await caught(backend.get('data', NAME_A))).toBeInstanceOf(ObjectMissingError)
    await w.commit()
    expect((await backend.get('data', NAME_A)).equals(data)).toBe(true)
    expect(await listNames('data')).toEqual([NAME_A])
    expect(await tempFilesUnder(repo)).toEqual([])
  })

  test('abort leaves nothing behind', async () => {
    const w = await backend.create('index', NAME_B)
    await w.write(Buffer.from('partial'), 0)
    expect(await tempFilesUnder(repo)).toHaveLength(1)
    await w.abort()
    expect(await listNames('index')).toEqual([])
    expect(await tempFilesUnder(repo)).toEqual([])
  })

  test('a missing kind directory is recreated; an invalid name is refused', async () => {
    await fsp.rm(path.join(repo, 'data', 'ff'), {recursive: true})
    const w = await backend.create('data', NAME_C)
    await w.write(Buffer.from('x'), 0)
    await w.commit()
    expect((await backend.get('data', NAME_C)).toString()).toBe('x')
    expect(await caught(backend.create('data', '../x'))).toBeInstanceOf(IntegrityError)
  })
})

describe('atomicWriteFile', () => {
  test('writes the data with the given mode, no temp file left', async () => {
    const target = path.join(root, 'f')
    await atomicWriteFile(target, Buffer.from('hello'), 0o600)
    expect(await fsp.readFile(target, 'utf8')).toBe('hello')
    expect((await fsp.stat(target)).mode & 0o777).toBe(0o600)
    await atomicWriteFile(target, [Buffer.from('he'), new Uint8Array([0x6c, 0x6c]), Buffer.from('o!')])
    expect(await fsp.readFile(target, 'utf8')).toBe('hello!')
    expect(await tempFilesUnder(root)).toEqual([])
  })

  test('a failed rename removes the temp file', async () => {
    const target = path.join(root, 'a-directory')
    await fsp.mkdir(target)
    await fsp.writeFile(path.join(target, 'keep'), 'x')
    await expect(atomicWriteFile(target, Buffer.from('data'))).rejects.toThrow()
    expect(await tempFilesUnder(root)).toEqual([])
    expect(await fsp.readdir(target)).toEqual(['keep'])
  })

  test('a missing directory is an ENOENT error', async () => {
    const err = await caught(atomicWriteFile(path.join(root, 'no', 'such', 'f'), Buffer.from('x')))
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT')
  })
})

describe('checkRepositoryPath', () => {
  test('missing, directory, or refused', async () => {
    expect(await checkRepositoryPath(path.join(root, 'nothing'))).toBe('missing')
    expect(await checkRepositoryPath(repo)).toBe('directory')
    const file = path.join(root, 'plain')
    await fsp.writeFile(file, 'x')
    const err = await caught(checkRepositoryPath(file))
    expect(err).toBeInstanceOf(UsageError)
    expect((err as Error).message).toBe(`repository path ${file} exists and is not a directory`)
  })
})
