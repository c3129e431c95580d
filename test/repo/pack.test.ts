import {describe, expect, test} from 'vitest'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {
  BlobType,
  decodePackHeader,
  decodePackTrailer,
  encodePackTail,
  PACK_ENTRY_BYTES,
  PACK_MAGIC,
  PACK_TRAILER_BYTES,
  PACK_VERSION,
  type PackEntry,
  readRanges,
} from '../../src/repo/pack.js'
import {seededBytes} from '../helpers/tree.js'
import {thrownBy} from '../helpers/hostile.js'

/** A pack as the writer lays it out: blobs back to back, then header and trailer. */
function buildPack(blobs: {type: PackEntry['type']; compression: number; data: Buffer; rawLength: number}[]): {pack: Buffer; entries: PackEntry[]} {
  let offset = 0
  const entries = blobs.map((b) => {
    const e: PackEntry = {id: blake3(b.data), type: b.type, compression: b.compression, offset, storedLength: b.data.length, rawLength: b.rawLength}
    offset += b.data.length
    return e
  })
  return {pack: Buffer.concat([...blobs.map((b) => b.data), encodePackTail(entries)]), entries}
}

/** Read a pack's entries the way a reader does: trailer from the end, then the header it points to. */
function readPack(pack: Buffer, name = 'p1'): PackEntry[] {
  const trailer = pack.subarray(Math.max(0, pack.length - PACK_TRAILER_BYTES))
  const {entryCount, headerHash} = decodePackTrailer(trailer, pack.length, name)
  const headerEnd = pack.length - PACK_TRAILER_BYTES
  const header = pack.subarray(headerEnd - entryCount * PACK_ENTRY_BYTES, headerEnd)
  return decodePackHeader(header, headerHash, pack.length, name)
}

function sample(): {pack: Buffer; entries: PackEntry[]} {
  return buildPack([
    {type: BlobType.data, compression: 1, data: seededBytes(1000, 1), rawLength: 4000},
    {type: BlobType.tree, compression: 0, data: seededBytes(17, 2), rawLength: 17},
    {type: BlobType.data, compression: 0, data: Buffer.alloc(0), rawLength: 0},
    {type: BlobType.data, compression: 1, data: seededBytes(70_000, 3), rawLength: 0xffffffff},
  ])
}

const integrity = (fn: () => unknown): IntegrityError => thrownBy(fn, IntegrityError)

describe('pack tail codec', () => {
  test('round trip: entries, offsets and lengths', () => {
    const {pack, entries} = sample()
    const decoded = readPack(pack)
    expect(decoded).toEqual(entries)
    expect(decoded.map((e) => e.offset)).toEqual([0, 1000, 1017, 1017])
    expect(pack.length).toBe(1000 + 17 + 70_000 + 4 * PACK_ENTRY_BYTES + PACK_TRAILER_BYTES)
  })

  test('layout: 42-byte entries and a 48-byte trailer with hash, count, version, reserved, magic', () => {
    expect(PACK_ENTRY_BYTES).toBe(42)
    expect(PACK_TRAILER_BYTES).toBe(48)
    expect(PACK_MAGIC.toString('latin1')).toBe('ckptpack')
    expect(PACK_VERSION).toBe(1)
    const {pack, entries} = sample()
    const tail = encodePackTail(entries)
    const header = tail.subarray(0, 4 * 42)
    const trailer = tail.subarray(4 * 42)
    expect(pack.subarray(pack.length - tail.length).equals(tail)).toBe(true)
    expect(trailer.subarray(0, 32).equals(blake3(header))).toBe(true)
    expect(trailer.readUInt32LE(32)).toBe(4)
    expect(trailer.readUInt16LE(36)).toBe(1)
    expect(trailer.readUInt16LE(38)).toBe(0)
    expect(trailer.subarray(40).toString('latin1')).toBe('ckptpack')
    // Second entry: id, type, compression, storedLength, rawLength.
    const e1 = header.subarray(42, 84)
    expect(e1.subarray(0, 32).equals(entries[1]!.id)).toBe(true)
    expect([e1[32], e1[33], e1.readUInt32LE(34), e1.readUInt32LE(38)]).toEqual([1, 0, 17, 17])
    expect(header.readUInt32LE(3 * 42 + 38)).toBe(0xffffffff)
  })

  test('an empty pack round-trips', () => {
    const {pack} = buildPack([])
    expect(pack.length).toBe(PACK_TRAILER_BYTES)
    expect(readPack(pack)).toEqual([])
  })

  test('every single-byte change in the header is detected', () => {
    const {pack} = sample()
    const headerStart = pack.length - PACK_TRAILER_BYTES - 4 * PACK_ENTRY_BYTES
    for (let at = headerStart; at < pack.length - PACK_TRAILER_BYTES; at++) {
      for (const mask of [0x01, 0xff]) {
        const bad = Buffer.from(pack)
        bad[at]! ^= mask
        expect(integrity(() => readPack(bad)).message).toBe('pack p1: header does not match its hash')
      }
    }
  })

  test('every single-byte change in the trailer\'s hash, count, version, reserved field and magic is detected', () => {
    const {pack} = sample()
    const t = pack.length - PACK_TRAILER_BYTES
    const fields = [
      ...Array.from({length: 32}, (_, i) => t + i), // header hash
      t + 32, t + 33, t + 34, t + 35, // entry count
      t + 36, t + 37, // version
      t + 38, t + 39, // reserved
      ...Array.from({length: 8}, (_, i) => t + 40 + i), // magic
    ]
    for (const at of fields) {
      for (const mask of [0x01, 0x04, 0xff]) {
        const bad = Buffer.from(pack)
        bad[at]! ^= mask
        const err = integrity(() => readPack(bad))
        expect(err.data).toEqual({pack: 'p1'})
        expect(err.message).toMatch(/^pack p1: (header does not match its hash|trailer claims \d+ entries, more than the pack can hold|unknown pack version \d+|trailer is damaged \((no pack magic|reserved field set)\))$/)
      }
    }
  })

  test('a wrong blob type is refused even with a matching hash', () => {
    const {entries} = sample()
    const tail = encodePackTail(entries)
    const header = Buffer.from(tail.subarray(0, 4 * 42))
    header[42 + 32] = 2
    const size = 1000 + 17 + 70_000 + tail.length
    expect(integrity(() => decodePackHeader(header, blake3(header), size, 'p1')).message).toBe('pack p1: unknown blob type 2')
  })

  test('truncation is detected at every length', () => {
    const {pack} = buildPack([
      {type: BlobType.data, compression: 0, data: seededBytes(100, 1), rawLength: 100},
      {type: BlobType.tree, compression: 1, data: seededBytes(60, 2), rawLength: 200},
    ])
    for (let n = 0; n < pack.length; n++) integrity(() => readPack(pack.subarray(0, n)))
  })

  test('a pack with bytes missing or added before the header is refused by size', () => {
    const {pack} = sample()
    const shorter = Buffer.concat([pack.subarray(0, 500), pack.subarray(501)])
    expect(integrity(() => readPack(shorter)).message).toBe(`pack p1: blobs, header and trailer add up to ${pack.length} bytes, the pack has ${pack.length - 1}`)
    const longer = Buffer.concat([Buffer.from('x'), pack])
    expect(integrity(() => readPack(longer)).message).toBe(`pack p1: blobs, header and trailer add up to ${pack.length} bytes, the pack has ${pack.length + 1}`)
  })

  test('trailing bytes after the trailer are refused', () => {
    const {pack} = sample()
    expect(integrity(() => readPack(Buffer.concat([pack, Buffer.alloc(1)]))).message).toBe('pack p1: trailer is damaged (no pack magic)')
  })

  test('a trailer of the wrong length is refused', () => {
    const {pack} = sample()
    const trailer = pack.subarray(pack.length - PACK_TRAILER_BYTES)
    expect(integrity(() => decodePackTrailer(trailer.subarray(1), pack.length, 'p1')).message).toBe('pack p1: trailer is damaged (no pack magic)')
    expect(integrity(() => decodePackTrailer(Buffer.concat([Buffer.alloc(1), trailer]), pack.length, 'p1')).message).toBe('pack p1: trailer is damaged (no pack magic)')
  })

  test('a count the pack cannot hold is refused before the header is read', () => {
    const {pack} = sample()
    const trailer = Buffer.from(pack.subarray(pack.length - PACK_TRAILER_BYTES))
    const most = Math.floor((pack.length - PACK_TRAILER_BYTES) / PACK_ENTRY_BYTES)
    trailer.writeUInt32LE(most, 32)
    expect(decodePackTrailer(trailer, pack.length, 'p1').entryCount).toBe(most)
    trailer.writeUInt32LE(most + 1, 32)
    expect(integrity(() => decodePackTrailer(trailer, pack.length, 'p1')).message).toBe(`pack p1: trailer claims ${most + 1} entries, more than the pack can hold`)
  })
})

describe('readRanges', () => {
  const blob = (offset: number, storedLength: number) => ({offset, storedLength})

  test('groups blobs into reads of at most maxBytes, reading through gaps, a larger blob alone', () => {
    const blobs = [blob(0, 100), blob(100, 200), blob(400, 100), blob(500, 1000), blob(1500, 50), blob(1560, 40)]
    expect(readRanges(blobs, 500)).toEqual([
      {start: 0, end: 500, blobs: blobs.slice(0, 3)},
      {start: 500, end: 1500, blobs: [blobs[3]]},
      {start: 1500, end: 1600, blobs: blobs.slice(4)},
    ])
  })

  test('every blob lands in exactly one range, in order, and each range holds its blobs whole', () => {
    let x = 12345
    const rand = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) % n)
    const blobs: {offset: number; storedLength: number}[] = []
    for (let at = 0, i = 0; i < 500; i++) {
      at += rand(3) === 0 ? rand(5000) : 0
      const len = 1 + rand(rand(10) === 0 ? 40_000 : 4000)
      blobs.push(blob(at, len))
      at += len
    }
    for (const max of [1, 4096, 10_000, 1 << 20]) {
      const ranges = readRanges(blobs, max)
      expect(ranges.flatMap((r) => r.blobs)).toEqual(blobs)
      for (const r of ranges) {
        expect(r.start).toBe(r.blobs[0]!.offset)
        expect(r.end).toBe(Math.max(...r.blobs.map((b) => b.offset + b.storedLength)))
        if (r.blobs.length > 1) expect(r.end - r.start).toBeLessThanOrEqual(max)
      }
    }
    expect(readRanges([], 100)).toEqual([])
  })
})
