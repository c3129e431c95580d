// Loading the index straight from the index files' bytes (forEachIndexEntry into a presized
// IdMap) against the previous loaders (decodeIndex's objects, then has/set), on a real
// repository: index files written by snapshots, plus hand-made ones that list a pack again (with
// another size and an extra blob), store a blob in a second pack, and damaged ones (bytes that
// fail their hash, and files whose hash is right but whose structure is not).
import {randomBytes} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {mapLimit} from '../../src/core/concurrency.js'
import {IntegrityError, ObjectMissingError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {IdMap} from '../../src/core/idmap.js'
import {toHex} from '../../src/core/ids.js'
import {BlobIndex} from '../../src/repo/blobindex.js'
import {decodeIndex, encodeIndex, type IndexedPack} from '../../src/repo/indexfile.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {BlobType, type BlobTypeValue, type PackEntry} from '../../src/repo/pack.js'
import type {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import type {Backend} from '../../src/store/backend.js'
import {loadVerifyIndex, type Location} from '../../src/verify/blobindex.js'
import {Findings} from '../../src/verify/findings.js'
import {buildTree, tempDir} from '../helpers/tree.js'
import {disagreements, previousDecodeIndex} from './previous.js'

let root: string
let repoDir: string
/** Index files the snapshots wrote, by name. */
const written = new Map<string, Buffer>()
/** Index files made here: name -> what they are. */
const made = new Map<string, string>()
/** Blobs listed only by damaged index files: none of them may be loaded. */
const unloadable: Buffer[] = []

function fresh(offset: number, storedLength: number, type: BlobTypeValue = BlobType.data): PackEntry {
  return {id: randomBytes(32), type, compression: 1, offset, storedLength, rawLength: storedLength * 2}
}

async function put(backend: Backend, bytes: Buffer, what: string, name = toHex(blake3(bytes))): Promise<string> {
  await backend.put('index', name, bytes)
  made.set(name, what)
  return name
}

beforeAll(async () => {
  root = await fsp.realpath(await tempDir('ckpt-indexload-'))
  repoDir = path.join(root, 'repo')
  const src = path.join(root, 'src')
  await fsp.mkdir(src)
  await initLocalRepository(repoDir, {now: Date.now(), packSize: 1024 * 1024})
  const small = Object.fromEntries(Array.from({length: 60}, (_, i) => [`s${i}.txt`, `small file ${i}\n`.repeat(i + 1)]))
  await buildTree(src, {'a.bin': {file: {random: 1_500_000, seed: 1}}, small: {dir: small}})
  const snap = async () => createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'test'})
  await snap()
  await buildTree(src, {'b.bin': {file: {random: 1_200_000, seed: 2}}, more: {dir: {'x.txt': 'x\n', 'y.bin': {file: {random: 90_000, seed: 3}}}}})
  await snap()
  await buildTree(src, {'c.bin': {file: {random: 700_000, seed: 4}}})
  await snap()

  const repo = await openLocalRepository(repoDir)
  for await (const o of repo.backend.list('index')) written.set(o.name, await repo.backend.get('index', o.name))
  expect(written.size).toBe(3)
  const real = [...written.keys()].sort().map((n) => decodeIndex(written.get(n)!, n))
  const p0 = real[0]![0]!
  const p1 = real[1]![0]!
  expect(p0.entries.length).toBeGreaterThan(1)

  // The first pack again, 100 bytes larger and with one more blob; and a new pack holding a blob
  // the second file already gives (the same blob in two packs) and a new one.
  const extra = fresh(p0.size, 50)
  const dup = {...p1.entries[0]!, offset: 0}
  const other = {name: randomBytes(32).toString('hex'), size: dup.storedLength + 300, entries: [dup, fresh(dup.storedLength, 300, BlobType.tree)]}
  await put(repo.backend, encodeIndex([{...p0, size: p0.size + 100, entries: [...p0.entries, extra]}, other]), 'relists a pack, another size and one more blob; a blob in a second pack')
  // Two packs listed exactly as they are, each from another index file (one pack alone could
  // encode to the very file a snapshot wrote, and so share its name).
  await put(repo.backend, encodeIndex([real[2]![0]!, p1]), 'relists two packs as they are')
  await put(repo.backend, encodeIndex([]), 'empty')
  // Damaged: a real file with one byte changed (fails its hash); files named by their hash whose
  // structure is wrong, after some good entries: an unknown type, a count past the end, and a blob outside its pack.
  const changed = Buffer.from(written.get([...written.keys()].sort()[2]!)!)
  changed[changed.length - 3]! ^= 0x10
  await put(repo.backend, changed, 'fails its hash', randomBytes(32).toString('hex'))
  const bad = (): IndexedPack[] => {
    const entries = [fresh(0, 10), fresh(10, 10), fresh(20, 10)]
    unloadable.push(...entries.map((e) => e.id))
    return [{name: randomBytes(32).toString('hex'), size: 30, entries}]
  }
  const badType = encodeIndex(bad())
  badType[16 + 40 + 2 * 46 + 32] = 7
  await put(repo.backend, badType, 'unknown blob type')
  const badCount = encodeIndex(bad())
  badCount.writeUInt32LE(4, 16 + 36)
  await put(repo.backend, badCount, 'entry count past the end')
  const outside = bad()
  outside[0]!.size = 25
  await put(repo.backend, encodeIndex(outside), 'blob outside its pack')
}, 60_000)

afterAll(async () => {
  if (root) await fsp.rm(root, {recursive: true, force: true})
})

/** Repository.loadIndex as it was: decodeIndex's objects, then has() and set() per blob into a map that grows. */
async function previousLoad(backend: Backend) {
  const index = new IdMap(5)
  const packs: {name: string; size: number}[] = []
  const packNos = new Map<string, number>()
  const indexFiles: string[] = []
  const damaged: {name: string; message: string}[] = []
  const names: string[] = []
  for await (const obj of backend.list('index')) names.push(obj.name)
  names.sort()
  const loaded = await mapLimit(names, 8, async (name) => {
    try {
      let bytes: Buffer
      try {
        bytes = await backend.get('index', name)
      } catch (err) {
        if (err instanceof ObjectMissingError) throw new IntegrityError(`index ${name} vanished while loading`, {index: name}, {cause: err})
        throw err
      }
      if (toHex(blake3(bytes)) !== name) throw new IntegrityError(`index ${name} does not match its hash (damaged or truncated)`, {index: name})
      return previousDecodeIndex(bytes, name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      damaged.push({name, message: err.message})
      return undefined
    }
  })
  loaded.forEach((ps, i) => {
    if (!ps) return
    for (const p of ps) {
      let packNo = packNos.get(p.name)
      if (packNo === undefined) {
        packNo = packs.length
        packs.push({name: p.name, size: p.size})
        packNos.set(p.name, packNo)
      } else {
        packs[packNo]!.size = p.size
      }
      for (const e of p.entries) if (!index.has(e.id)) index.set(e.id, [packNo, e.offset, e.storedLength, e.rawLength, e.type | (e.compression << 8)])
    }
    indexFiles.push(names[i]!)
  })
  return {index, packs, indexFiles, damaged}
}

function entries(map: IdMap | BlobIndex): string[] {
  const out: string[] = []
  if (map instanceof IdMap) map.forEach((id, v) => out.push(`${toHex(id)} ${v.join(' ')}`))
  else map.forEach((id, e) => out.push(`${toHex(id)} ${[e.packNo, e.offset, e.storedLength, e.rawLength, e.type | (e.compression << 8)].join(' ')}`))
  return out
}

describe('loading the index from real index files', () => {
  test('the fixture has what the comparisons need', async () => {
    const names: string[] = []
    for await (const o of (await openLocalRepository(repoDir)).backend.list('index')) names.push(o.name)
    expect(names.length).toBe(written.size + made.size)
    for (const name of made.keys()) expect(written.has(name)).toBe(false)
    expect(unloadable.length).toBe(9)
  })

  test('the decoders agree with the previous one on the files snapshots wrote, and on damaged copies of them', () => {
    for (const [name, bytes] of written) {
      expect(decodeIndex(bytes, name)).toEqual(previousDecodeIndex(bytes, name))
      expect(disagreements(bytes, Math.max(1, Math.floor(bytes.length / 400)))).toEqual([])
    }
  })

  test('Repository.loadIndex: the same blobs, locations, packs, files and damage as the previous loader, in a map no larger', async () => {
    const repo: Repository = await openLocalRepository(repoDir)
    await repo.loadIndex()
    const want = await previousLoad(repo.backend)
    expect(entries(repo.index)).toEqual(entries(want.index))
    expect(repo.index.size).toBe(want.index.size)
    expect(repo.packs).toEqual(want.packs)
    expect(repo.indexFiles).toEqual(want.indexFiles)
    const damaged = repo.damagedIndexFiles.map((d) => ({name: d.name, message: d.error.message}))
    expect(damaged.sort((a, b) => a.name.localeCompare(b.name))).toEqual(want.damaged.sort((a, b) => a.name.localeCompare(b.name)))
    for (const d of repo.damagedIndexFiles) expect(d.error).toBeInstanceOf(IntegrityError)
    expect(new Set(damaged.map((d) => made.get(d.name)))).toEqual(new Set(['fails its hash', 'unknown blob type', 'entry count past the end', 'blob outside its pack']))
    for (const id of unloadable) expect(repo.has(id)).toBe(false)
    expect(repo.index.byteSize).toBeLessThanOrEqual(want.index.byteSize)
    // Loading again changes nothing; a blob added afterwards still goes in.
    const before = entries(repo.index)
    await repo.loadIndex()
    expect(entries(repo.index)).toEqual(before)
    const late = randomBytes(32)
    repo.index.set(late, 0, 0, 0, 0, BlobType.data, 0)
    expect(repo.has(late)).toBe(true)
  })

  test('verify\'s index: the same packs, claims, conflicts, damage and locations as the previous loader', async () => {
    const backend = (await openLocalRepository(repoDir)).backend
    const findings = new Findings()
    let bytes = 0
    const index = await loadVerifyIndex(backend, findings, (n) => (bytes += n))
    const wantFindings = new Findings()
    let wantBytes = 0
    const want = await previousVerifyLoad(backend, wantFindings, (n) => (wantBytes += n))
    expect(bytes).toBe(wantBytes)
    expect(findings.list()).toEqual(wantFindings.list())
    expect(index.damaged.length).toBe(want.damaged.length)
    expect(index.indexFiles).toEqual(want.indexFiles)
    expect(index.packs).toEqual(want.packs)
    expect(index.size).toBe(want.first.size)
    expect(findings.has('index-conflict')).toBe(true)
    let twice = 0
    for (const [hex] of want.first) {
      const id = Buffer.from(hex, 'hex')
      const got = index.locations(id)
      expect(got).toEqual(want.locations(hex))
      if (got.length > 1) twice++
    }
    expect(twice).toBe(1)
    for (const id of unloadable) expect(index.locations(id)).toEqual([])
  })
})

/** loadVerifyIndex and VerifyIndex.add as they were (with Maps standing in for the IdMap). */
async function previousVerifyLoad(backend: Backend, findings: Findings, onBytes: (n: number) => void) {
  const packs: {name: string; size: number; claims: number; problems: number[]}[] = []
  const packNos = new Map<string, number>()
  const first = new Map<string, Location>()
  const more = new Map<string, Location[]>()
  const indexFiles: string[] = []
  const damaged: number[] = []
  const locations = (hex: string): Location[] => {
    const f = first.get(hex)
    return f ? [f, ...(more.get(hex) ?? [])] : []
  }
  const same = (a: Location, b: Location) => a.packNo === b.packNo && a.offset === b.offset && a.storedLength === b.storedLength && a.rawLength === b.rawLength && a.type === b.type && a.compression === b.compression
  const add = (indexFile: string, p: IndexedPack) => {
    let packNo = packNos.get(p.name)
    if (packNo === undefined) {
      packNo = packs.length
      packs.push({name: p.name, size: p.size, claims: 0, problems: []})
      packNos.set(p.name, packNo)
    } else if (packs[packNo]!.size !== p.size) {
      const pack = packs[packNo]!
      const n = findings.add({kind: 'index-conflict', object: 'pack', id: p.name, message: `index files disagree about the size of pack ${p.name}: ${pack.size} bytes, and ${p.size} bytes in index ${indexFile}`})
      if (!pack.problems.includes(n)) pack.problems.push(n)
    }
    const pack = packs[packNo]!
    for (const e of p.entries) {
      const loc: Location = {packNo, offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, type: e.type, compression: e.compression}
      const hex = toHex(e.id)
      const known = locations(hex)
      if (known.some((k) => same(k, loc))) continue
      pack.claims++
      if (known.length === 0) first.set(hex, loc)
      else more.set(hex, [...(more.get(hex) ?? []), loc])
    }
  }
  const names: string[] = []
  for await (const obj of backend.list('index')) names.push(obj.name)
  names.sort()
  const loaded = await mapLimit(names, 8, async (name): Promise<IndexedPack[] | undefined> => {
    let bytes: Buffer
    try {
      bytes = await backend.get('index', name)
    } catch (err) {
      if (err instanceof ObjectMissingError) return undefined
      if (!(err instanceof IntegrityError)) throw err
      damaged.push(findings.add({kind: 'index-damaged', object: 'index', id: name, message: err.message}))
      return undefined
    }
    onBytes(bytes.length)
    try {
      if (toHex(blake3(bytes)) !== name) throw new IntegrityError(`index ${name} does not match its hash (damaged or truncated)`)
      return previousDecodeIndex(bytes, name)
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err
      damaged.push(findings.add({kind: 'index-damaged', object: 'index', id: name, message: err.message}))
      return undefined
    }
  })
  loaded.forEach((ps, i) => {
    if (!ps) return
    indexFiles.push(names[i]!)
    for (const p of ps) add(names[i]!, p)
  })
  return {packs, first, locations, indexFiles, damaged}
}
