import {describe, expect, test} from 'vitest'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {checkIndex, decodeIndex, encodeIndex, forEachIndexEntry, type IndexedPack, indexedBlobCount, INDEX_MAGIC, INDEX_VERSION} from '../../src/repo/indexfile.js'
import {BlobType, type PackEntry} from '../../src/repo/pack.js'
import {disagreements, previousDecodeIndex, viaCallbacks} from './previous.js'
import {thrownBy} from '../helpers/hostile.js'

const ENTRY_BYTES = 46
const PACK_BYTES = 40

function entry(n: number, offset: number, storedLength: number, extra: Partial<PackEntry> = {}): PackEntry {
  return {id: blake3(Buffer.from(`blob ${n}`)), type: BlobType.data, compression: 1, offset, storedLength, rawLength: storedLength * 3, ...extra}
}

function packs(): IndexedPack[] {
  return [
    {
      name: blake3(Buffer.from('pack A')).toString('hex'),
      size: 5000,
      entries: [entry(1, 0, 1000), entry(2, 1000, 10, {type: BlobType.tree, compression: 0, rawLength: 10}), entry(3, 1010, 0, {rawLength: 0})],
    },
    {name: blake3(Buffer.from('pack B')).toString('hex'), size: 0xffffffff, entries: [entry(4, 0xfffffff0, 0xf, {rawLength: 0xffffffff})]},
    {name: blake3(Buffer.from('pack C')).toString('hex'), size: 48, entries: []},
  ]
}

const integrity = (fn: () => unknown): IntegrityError => thrownBy(fn, IntegrityError)

describe('index codec', () => {
  test('round trip', () => {
    const p = packs()
    const bytes = encodeIndex(p)
    expect(bytes.length).toBe(16 + 3 * PACK_BYTES + 4 * ENTRY_BYTES)
    expect(decodeIndex(bytes, 'i1')).toEqual(p)
  })

  test('an empty index round-trips', () => {
    const bytes = encodeIndex([])
    expect(bytes.toString('hex')).toBe(Buffer.from('ckptindx').toString('hex') + '01000000' + '00000000')
    expect(decodeIndex(bytes, 'i1')).toEqual([])
  })

  test('layout', () => {
    expect(INDEX_MAGIC.toString('latin1')).toBe('ckptindx')
    expect(INDEX_VERSION).toBe(1)
    const p = packs()
    const bytes = encodeIndex(p)
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('ckptindx')
    expect(bytes.readUInt32LE(8)).toBe(1)
    expect(bytes.readUInt32LE(12)).toBe(3)
    expect(bytes.subarray(16, 48).toString('hex')).toBe(p[0]!.name)
    expect(bytes.readUInt32LE(48)).toBe(5000)
    expect(bytes.readUInt32LE(52)).toBe(3)
    // Second entry of the first pack: id, type, compression, offset, storedLength, rawLength.
    const e = bytes.subarray(56 + ENTRY_BYTES, 56 + 2 * ENTRY_BYTES)
    expect(e.subarray(0, 32).equals(p[0]!.entries[1]!.id)).toBe(true)
    expect([e[32], e[33], e.readUInt32LE(34), e.readUInt32LE(38), e.readUInt32LE(42)]).toEqual([1, 0, 1000, 10, 10])
  })

  test('every single-byte change in the file header is detected', () => {
    const bytes = encodeIndex(packs())
    for (let at = 0; at < 16; at++) {
      for (const mask of [0x01, 0x02, 0x80, 0xff]) {
        const bad = Buffer.from(bytes)
        bad[at]! ^= mask
        const err = integrity(() => decodeIndex(bad, 'i1'))
        expect(err.data).toEqual({index: 'i1'})
        expect(err.message).toMatch(/^index i1: (not an index file \(bad magic\)|unknown index version \d+|truncated|has trailing bytes)$/)
      }
    }
  })

  test('every single-byte change in a per-pack entry count is detected', () => {
    const bytes = encodeIndex(packs())
    const countFields = [52, 56 + 3 * ENTRY_BYTES + 36, 56 + 3 * ENTRY_BYTES + PACK_BYTES + ENTRY_BYTES + 36]
    for (const field of countFields) {
      for (let at = field; at < field + 4; at++) {
        for (const mask of [0x01, 0x02, 0xff]) {
          const bad = Buffer.from(bytes)
          bad[at]! ^= mask
          expect(integrity(() => decodeIndex(bad, 'i1')).message).toMatch(/^index i1: (truncated|has trailing bytes|blob [0-9a-f]{64} lies outside pack [0-9a-f]{64}|unknown blob type \d+)$/)
        }
      }
    }
  })

  test('truncation is detected at every length', () => {
    const bytes = encodeIndex(packs())
    for (let n = 0; n < bytes.length; n++) {
      expect(integrity(() => decodeIndex(bytes.subarray(0, n), 'i1')).message).toMatch(/^index i1: (not an index file \(bad magic\)|truncated|has trailing bytes)$/)
    }
  })

  test('trailing bytes are refused', () => {
    const bytes = encodeIndex(packs())
    expect(integrity(() => decodeIndex(Buffer.concat([bytes, Buffer.alloc(1)]), 'i1')).message).toBe('index i1: has trailing bytes')
    expect(integrity(() => decodeIndex(Buffer.concat([bytes, Buffer.alloc(ENTRY_BYTES)]), 'i1')).message).toBe('index i1: has trailing bytes')
  })

  test('an entry outside its pack is refused', () => {
    const p = packs()
    const name = p[0]!.name
    const idHex = (e: PackEntry) => e.id.toString('hex')
    // Ends one byte past the pack.
    const past = [{name, size: 5000, entries: [entry(1, 4000, 1001)]}]
    expect(integrity(() => decodeIndex(encodeIndex(past), 'i1')).message).toBe(`index i1: blob ${idHex(past[0]!.entries[0]!)} lies outside pack ${name}`)
    // Ends exactly at the end: fine.
    expect(decodeIndex(encodeIndex([{name, size: 5000, entries: [entry(1, 4000, 1000)]}]), 'i1')[0]!.entries[0]!.storedLength).toBe(1000)
    // offset + length past 2^32 must not wrap around.
    const wrap = [{name, size: 0xffffffff, entries: [entry(1, 0xffffffff, 2)]}]
    expect(integrity(() => decodeIndex(encodeIndex(wrap), 'i1')).message).toBe(`index i1: blob ${idHex(wrap[0]!.entries[0]!)} lies outside pack ${name}`)
  })

  test('an unknown blob type is refused', () => {
    const bytes = encodeIndex(packs())
    bytes[56 + 32] = 7
    expect(integrity(() => decodeIndex(bytes, 'i1')).message).toBe('index i1: unknown blob type 7')
  })

  test('a huge pack count is refused without allocating', () => {
    const bytes = encodeIndex([])
    bytes.writeUInt32LE(0xffffffff, 12)
    expect(integrity(() => decodeIndex(bytes, 'i1')).message).toBe('index i1: truncated')
    const one = encodeIndex(packs().slice(2))
    one.writeUInt32LE(0xffffffff, 16 + 36)
    expect(integrity(() => decodeIndex(one, 'i1')).message).toBe('index i1: truncated')
  })
})

describe('forEachIndexEntry, checkIndex', () => {
  test('hand over what decodeIndex returns, without an object per entry', () => {
    const p = packs()
    const bytes = encodeIndex(p)
    expect(viaCallbacks(bytes, 'i1')).toEqual(p)
    expect(checkIndex(bytes, 'i1')).toEqual(p.map((x) => ({name: x.name, entries: x.entries.length})))
    // Fields in one reused array (BlobIndex stores it as it comes); ids as offsets into the file's bytes.
    const seen: {at: number; fields: number[]}[] = []
    let array: Uint32Array | undefined
    forEachIndexEntry(bytes, 'i1', (_name, _size, n) => 100 + n, (b, at, f) => {
      expect(b).toBe(bytes)
      if (array) expect(f).toBe(array)
      array = f
      seen.push({at, fields: [...f]})
    })
    expect(seen).toEqual([
      {at: 56, fields: [103, 0, 1000, 3000, 0 | (1 << 8)]},
      {at: 56 + ENTRY_BYTES, fields: [103, 1000, 10, 10, 1]},
      {at: 56 + 2 * ENTRY_BYTES, fields: [103, 1010, 0, 0, 1 << 8]},
      {at: 56 + 3 * ENTRY_BYTES + PACK_BYTES, fields: [101, 0xfffffff0, 0xf, 0xffffffff, 1 << 8]},
    ])
    seen.forEach((s, i) => expect(bytes.subarray(s.at, s.at + 32).equals(p.flatMap((x) => x.entries)[i]!.id)).toBe(true))
    // Without onEntry only the packs are visited.
    const visited: string[] = []
    forEachIndexEntry(bytes, 'i1', (name, size, n) => visited.push(`${name.slice(0, 4)} ${size} ${n}`))
    expect(visited).toEqual(p.map((x) => `${x.name.slice(0, 4)} ${x.size} ${x.entries.length}`))
  })

  test('a damaged file throws before any callback, with the errors decodeIndex gives', () => {
    const bytes = encodeIndex(packs())
    bytes[56 + 2 * ENTRY_BYTES + 32] = 9 // the third entry: after two good ones
    let calls = 0
    const err = integrity(() => forEachIndexEntry(bytes, 'i1', () => ++calls, () => void calls++))
    expect(err.message).toBe('index i1: unknown blob type 9')
    expect(err.data).toEqual({index: 'i1'})
    expect(calls).toBe(0)
    expect(integrity(() => checkIndex(bytes, 'i1')).message).toBe('index i1: unknown blob type 9')
    expect(integrity(() => checkIndex(Buffer.concat([encodeIndex([]), Buffer.alloc(1)]), 'i1')).message).toBe('index i1: has trailing bytes')
  })

  test('agree with the previous decoder on every truncation and single-byte change', () => {
    const p = packs()
    expect(disagreements(encodeIndex(p))).toEqual([])
    expect(disagreements(encodeIndex([]))).toEqual([])
    // A pack listed twice in one file, and a huge entry count, as the previous decoder saw them.
    expect(disagreements(encodeIndex([...p, p[0]!]))).toEqual([])
    const huge = encodeIndex(p.slice(2))
    huge.writeUInt32LE(0xffffffff, 16 + 36)
    expect(disagreements(huge)).toEqual([])
    expect(decodeIndex(encodeIndex(p), 'i1')).toEqual(previousDecodeIndex(encodeIndex(p), 'i1'))
  })
})

describe('indexedBlobCount', () => {
  test('counts every entry, a pack listed by several files once, and skips files that did not load', () => {
    const a = [{name: 'p1', entries: 10}, {name: 'p2', entries: 5}]
    const b = [{name: 'p2', entries: 5}, {name: 'p3', entries: 0}, {name: 'p4', entries: 7}]
    expect(indexedBlobCount([])).toBe(0)
    expect(indexedBlobCount([a])).toBe(15)
    expect(indexedBlobCount([a, undefined, b])).toBe(22)
    expect(indexedBlobCount([b, a, a])).toBe(22)
  })
})
