import {describe, expect, test} from 'vitest'
import {BlobIndex, type Location} from '../../src/repo/blobindex.js'
import {encodeIndex, type IndexedPack} from '../../src/repo/indexfile.js'
import {BlobType, type PackEntry} from '../../src/repo/pack.js'
import {seededBytes} from '../helpers/tree.js'

function ids(count: number, seed: number): Buffer[] {
  const bytes = seededBytes(count * 32, seed)
  return Array.from({length: count}, (_, i) => bytes.subarray(i * 32, (i + 1) * 32))
}

function entry(id: Buffer, offset: number, over: Partial<PackEntry> = {}): PackEntry {
  return {id, type: BlobType.data, compression: 1, offset, storedLength: 100 + offset, rawLength: 200 + offset, ...over}
}

const packName = (n: number) => n.toString(16).padStart(64, '0')

describe('BlobIndex', () => {
  test('numbers packs once and finds every blob where it was added, the largest values a u32 holds included', () => {
    const index = new BlobIndex()
    const [a, b, c] = ids(3, 1)
    expect(index.addPack(packName(1), 10)).toEqual({packNo: 0, isNew: true})
    expect(index.addPack(packName(2), 20)).toEqual({packNo: 1, isNew: true})
    expect(index.addPack(packName(1), 99)).toEqual({packNo: 0, isNew: false})
    expect(index.packs).toEqual([{name: packName(1), size: 10}, {name: packName(2), size: 20}])
    expect(index.packNo(packName(2))).toBe(1)
    expect(index.packNo(packName(3))).toBeUndefined()

    expect(index.addEntry(0, entry(a!, 0))).toBe('new')
    expect(index.addEntry(1, entry(b!, 0xffff_fff0, {type: BlobType.tree, compression: 255, storedLength: 0xffff_ffff, rawLength: 0xffff_fffe}))).toBe('new')
    expect(index.size).toBe(2)
    expect(index.has(a!)).toBe(true)
    expect(index.has(c!)).toBe(false)
    expect(index.location(a!)).toEqual({pack: packName(1), offset: 0, storedLength: 100, rawLength: 200, type: BlobType.data, compression: 1})
    expect(index.location(b!)).toEqual({pack: packName(2), offset: 0xffff_fff0, storedLength: 0xffff_ffff, rawLength: 0xffff_fffe, type: BlobType.tree, compression: 255})
    expect(index.location(c!)).toBeUndefined()
    expect(index.packOf(b!)).toBe(1)
    expect(index.rawLength(b!)).toBe(0xffff_fffe)
    expect(index.typeOf(b!)).toBe(BlobType.tree)
    expect([index.packOf(c!), index.rawLength(c!), index.typeOf(c!)]).toEqual([undefined, undefined, undefined])
    expect(index.isChosenCopy(a!, 0, 0)).toBe(true)
    expect(index.isChosenCopy(a!, 1, 0)).toBe(false)
  })

  test('without copies, the first location of a blob stays and later ones are dropped', () => {
    const index = new BlobIndex()
    const [a] = ids(1, 2)
    index.addPack(packName(1), 0)
    index.addPack(packName(2), 0)
    index.addEntry(0, entry(a!, 5))
    expect(index.addEntry(1, entry(a!, 7))).toBe('known')
    expect(index.locations(a!)).toEqual([{packNo: 0, offset: 5, storedLength: 105, rawLength: 205, type: BlobType.data, compression: 1}])
    expect(index.copiesOf(a!)).toEqual([])
    expect(index.blobsWithCopies).toBe(0)
  })

  test('with copies, every distinct location is kept once, the chosen one first', () => {
    const index = new BlobIndex({copies: true})
    const [a, b] = ids(2, 3)
    for (const n of [1, 2, 3]) index.addPack(packName(n), 0)
    index.addEntry(0, entry(a!, 5))
    expect(index.addEntry(1, entry(a!, 7))).toBe('copy')
    expect(index.addEntry(1, entry(a!, 7))).toBe('known') // the same pack listed by a second index file
    expect(index.addEntry(0, entry(a!, 5))).toBe('known')
    expect(index.addEntry(2, entry(a!, 9, {compression: 0}))).toBe('copy')
    index.addEntry(2, entry(b!, 0))
    expect(index.locations(a!).map((l) => [l.packNo, l.offset])).toEqual([[0, 5], [1, 7], [2, 9]])
    expect(index.copiesOf(a!).map((l) => l.packNo)).toEqual([1, 2])
    expect(index.locations(b!).length).toBe(1)
    expect(index.locationIn(a!, 2)).toMatchObject({offset: 9, compression: 0})
    expect(index.locationIn(b!, 0)).toBeUndefined()
    expect(index.blobsWithCopies).toBe(1)
    const seen: [string, number][] = []
    index.forEachCopy((id, copy) => seen.push([id.toString('hex'), copy.packNo]))
    expect(seen).toEqual([[a!.toString('hex'), 1], [a!.toString('hex'), 2]])
    expect(index.entriesOf(2).map((e) => [e.id.toString('hex'), e.offset])).toEqual([[b!.toString('hex'), 0], [a!.toString('hex'), 9]])
  })

  test('choose swaps a copy with the chosen location and keeps the mark; an unknown copy is refused', () => {
    const index = new BlobIndex({copies: true})
    const [a] = ids(1, 4)
    index.addPack(packName(1), 0)
    index.addPack(packName(2), 0)
    index.addEntry(0, entry(a!, 5))
    index.addEntry(1, entry(a!, 7, {type: BlobType.data, compression: 0}))
    index.mark(a!)
    const copy = index.copiesOf(a!)[0]!
    index.choose(a!, copy)
    expect(index.location(a!)).toEqual({pack: packName(2), offset: 7, storedLength: 107, rawLength: 207, type: BlobType.data, compression: 0})
    expect(index.copiesOf(a!)).toEqual([{packNo: 0, offset: 5, storedLength: 105, rawLength: 205, type: BlobType.data, compression: 1}])
    expect(index.isMarked(a!)).toBe(true)
    expect(index.isChosenCopy(a!, 1, 7)).toBe(true)
    const stranger: Location = {packNo: 0, offset: 5, storedLength: 105, rawLength: 205, type: BlobType.data, compression: 1}
    expect(() => index.choose(a!, stranger)).toThrow(RangeError)
  })

  test('marks: new, then marked; missing for a blob not indexed; they never show in a location', () => {
    const index = new BlobIndex()
    const [a, b, c] = ids(3, 5)
    index.addPack(packName(1), 0)
    index.addEntry(0, entry(a!, 0, {type: BlobType.tree, compression: 255}))
    index.addEntry(0, entry(b!, 300))
    const before = index.location(a!)
    expect(index.isMarked(a!)).toBe(false)
    expect(index.mark(a!)).toBe('new')
    expect(index.mark(a!)).toBe('marked')
    expect(index.mark(c!)).toBe('missing')
    expect(index.isMarked(a!)).toBe(true)
    expect(index.isMarked(b!)).toBe(false)
    expect(index.isMarked(c!)).toBe(false)
    expect(index.location(a!)).toEqual(before)
    expect(index.typeOf(a!)).toBe(BlobType.tree)
    expect(index.locations(a!)[0]!.compression).toBe(255)
    // set (the writer storing a blob anew) moves it and keeps its mark.
    index.set(a!, 0, 600, 1, 2, BlobType.tree, 0)
    expect(index.isMarked(a!)).toBe(true)
    expect(index.location(a!)).toMatchObject({offset: 600, storedLength: 1, rawLength: 2, compression: 0})
    const visited: [string, boolean, number][] = []
    index.forEach((id, e) => visited.push([Buffer.from(id).toString('hex'), e.marked, e.offset]))
    expect(visited).toEqual([[a!.toString('hex'), true, 600], [b!.toString('hex'), false, 300]])
  })

  test('an index file loads as its entries would one by one; onAdded sees what was not known', () => {
    const all = ids(300, 6)
    const packs: IndexedPack[] = [0, 1, 2].map((p) => ({name: packName(p + 1), size: 1_000_000 * (p + 1), entries: all.slice(p * 100, p * 100 + 120).map((id, i) => entry(id, i * 10, {type: i % 7 === 0 ? BlobType.tree : BlobType.data, compression: i % 3}))}))
    const bytes = encodeIndex(packs)
    const fromFile = new BlobIndex({copies: true})
    const added: number[] = []
    fromFile.addIndexFile(bytes, 'f', (name, size) => fromFile.addPack(name, size).packNo, (packNo) => added.push(packNo))
    const oneByOne = new BlobIndex({copies: true})
    for (const p of packs) {
      const {packNo} = oneByOne.addPack(p.name, p.size)
      for (const e of p.entries) oneByOne.addEntry(packNo, e)
    }
    expect(added.length).toBe(340)
    expect(fromFile.size).toBe(300)
    expect(fromFile.packs).toEqual(oneByOne.packs)
    for (const id of all) expect(fromFile.locations(id)).toEqual(oneByOne.locations(id))
    expect(fromFile.blobsWithCopies).toBe(40)
    // The same file again adds nothing.
    added.length = 0
    fromFile.addIndexFile(bytes, 'f', (name, size) => fromFile.addPack(name, size).packNo, (packNo) => added.push(packNo))
    expect(added).toEqual([])
  })

  test('pack records of the caller\'s type; memory stays that of the map, reserved once', () => {
    const index = new BlobIndex({newPack: (name, size) => ({name, size, hits: 0})})
    index.addPack(packName(1), 1)
    index.packs[0]!.hits++
    expect(index.packs[0]).toEqual({name: packName(1), size: 1, hits: 1})
    const all = ids(10_000, 7)
    index.reserve(all.length)
    const reserved = index.byteSize
    for (const [i, id] of all.entries()) index.addEntry(0, entry(id, i))
    expect(index.byteSize).toBe(reserved)
    // 32 id bytes + 5 u32s per blob, a u32 slot at most 70% full: under 115 bytes a blob.
    expect(index.byteSize / all.length).toBeLessThan(115)
  })
})
