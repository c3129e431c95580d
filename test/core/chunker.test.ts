import {describe, expect, test} from 'vitest'
import {checkChunkerParams, Chunker, type ChunkerParams, DEFAULT_CHUNKER, gearTable} from '../../src/core/chunker.js'
import {blake3} from '../../src/core/hash.js'
import {seededBytes, seededRandom} from '../helpers/tree.js'

const MiB = 1024 * 1024

/** Feed `data` to a fresh chunker in the given pieces; returns the end offset of every chunk. */
function cutPoints(data: Uint8Array, params: ChunkerParams, pieces: readonly number[] = [data.length]): number[] {
  const chunker = new Chunker(params)
  const ends: number[] = []
  let base = 0
  let p = 0
  while (base < data.length) {
    const size = Math.min(pieces[p++ % pieces.length]!, data.length - base)
    const buf = data.subarray(base, base + size)
    let from = 0
    for (;;) {
      const cut = chunker.next(buf, from)
      if (cut < 0) break
      ends.push(base + cut)
      from = cut
    }
    base += size
  }
  if (ends.length === 0 || ends[ends.length - 1] !== data.length) {
    ends.push(data.length)
    chunker.reset()
  }
  return ends
}

function sizesOf(ends: readonly number[]): number[] {
  return ends.map((end, i) => end - (i === 0 ? 0 : ends[i - 1]!))
}

/** Seeded xorshift32 for piece sizes (independent of the data generator). */
/** Piece sizes from 1 byte to `max`, log-uniform so small and huge pieces both occur often. */
function randomPieces(seed: number, count: number, max: number): number[] {
  const r = seededRandom(seed)
  return Array.from({length: count}, () => Math.max(1, Math.min(max, Math.floor(Math.exp(r() * Math.log(max + 1))))))
}

const SMALL: ChunkerParams = {minSize: 64, avgSize: 256, maxSize: 1024, normalization: 2, seed: 7}

// Shared inputs: generating 32 MiB costs a few hundred ms, so do it once.
const DATA_32M = seededBytes(32 * MiB, 7)
const CUTS_32M = cutPoints(DATA_32M, DEFAULT_CHUNKER)

describe('gearTable', () => {
  test('default seed: pinned regression vector (docs/FORMAT.md)', () => {
    const t = gearTable(DEFAULT_CHUNKER.seed)
    expect(DEFAULT_CHUNKER.seed).toBe(0x636b7074)
    expect(t.length).toBe(256)
    expect(Array.from(t.subarray(0, 8), (v) => v >>> 0)).toEqual([
      0x640ad519, 0x36f5da9f, 0x3f968f11, 0x71585eab, 0x6c4eda51, 0x7718d481, 0x3c3d59f9, 0x4bb820b5,
    ])
    expect(t[255]! >>> 0).toBe(3575096231)
    // The whole table, as 256 little-endian u32: computed independently (Python splitmix32) and by b3sum.
    const bytes = Buffer.alloc(1024)
    t.forEach((v, i) => bytes.writeUInt32LE(v >>> 0, i * 4))
    expect(blake3(bytes).toString('hex')).toBe('770752297fee3a3745c0969f6f212275c351e04053df5fe369df47c3a29e3c62')
  })

  test('is a pure function of the seed', () => {
    expect(gearTable(1)).toEqual(gearTable(1))
    expect(gearTable(1)).not.toEqual(gearTable(2))
    // Only the low 32 bits of the seed count.
    expect(gearTable(0xffffffff)).toEqual(gearTable(-1))
  })
})

describe('checkChunkerParams', () => {
  test('the default is valid', () => {
    expect(checkChunkerParams(DEFAULT_CHUNKER)).toBeUndefined()
    expect(checkChunkerParams(SMALL)).toBeUndefined()
  })

  test.each<[string, Partial<ChunkerParams>, string]>([
    ['avg not a power of two', {avgSize: 100_000}, 'avgSize'],
    ['avg too small', {minSize: 64, avgSize: 128, maxSize: 1024}, 'avgSize'],
    ['avg too large', {avgSize: 128 * MiB, maxSize: 256 * MiB}, 'avgSize'],
    ['avg not an integer', {avgSize: 131072.5}, 'avgSize'],
    ['min below 64', {minSize: 63}, 'minSize'],
    ['min equal to avg', {minSize: 128 * 1024}, 'minSize'],
    ['min not an integer', {minSize: 40000.5}, 'minSize'],
    ['max equal to avg', {maxSize: 128 * 1024}, 'maxSize'],
    ['max above 256 MiB', {maxSize: 256 * MiB + 1}, 'maxSize'],
    ['max NaN', {maxSize: Number.NaN}, 'maxSize'],
    ['normalization negative', {normalization: -1}, 'normalization'],
    ['normalization 5', {normalization: 5}, 'normalization'],
    ['normalization fractional', {normalization: 1.5}, 'normalization'],
    ['normalization 8 on the smallest average', {minSize: 64, avgSize: 256, maxSize: 1024, normalization: 8}, 'normalization'],
    ['seed negative', {seed: -1}, 'seed'],
    ['seed above 32 bits', {seed: 2 ** 32}, 'seed'],
    ['seed fractional', {seed: 0.5}, 'seed'],
  ])('%s', (_what, change, field) => {
    const params = {...DEFAULT_CHUNKER, ...change}
    const problem = checkChunkerParams(params)
    expect(problem).toBeDefined()
    expect(problem!.startsWith(field)).toBe(true)
    expect(() => new Chunker(params)).toThrow(RangeError)
    expect(() => new Chunker(params)).toThrow(`chunker: ${problem}`)
  })

  test('limits that are just valid', () => {
    expect(checkChunkerParams({minSize: 64, avgSize: 256, maxSize: 257, normalization: 0, seed: 0})).toBeUndefined()
    expect(checkChunkerParams({minSize: 64, avgSize: 256, maxSize: 257, normalization: 4, seed: 0})).toBeUndefined()
    expect(checkChunkerParams({minSize: 64, avgSize: 64 * MiB, maxSize: 256 * MiB, normalization: 4, seed: 0xffffffff})).toBeUndefined()
  })
})

describe('Chunker', () => {
  test('pinned cut points for seeded data (format regression)', () => {
    expect(CUTS_32M.slice(0, 5)).toEqual([150216, 269850, 415262, 548135, 745045])
    expect(CUTS_32M.length).toBe(226)
    const eight = cutPoints(seededBytes(8 * MiB, 1), DEFAULT_CHUNKER)
    expect(eight.slice(0, 6)).toEqual([162631, 213131, 380719, 525696, 679918, 829247])
    expect(eight.length).toBe(55)
  })

  test('cut points do not depend on how the input is split (random pieces of 1 byte to 5 MiB)', () => {
    const data = DATA_32M.subarray(0, 12 * MiB)
    const whole = cutPoints(data, DEFAULT_CHUNKER)
    expect(whole.length).toBeGreaterThan(50)
    for (const seed of [1, 2, 3]) {
      const pieces = randomPieces(seed, 4000, 5 * MiB)
      expect(pieces).toContain(1)
      expect(cutPoints(data, DEFAULT_CHUNKER, pieces)).toEqual(whole)
    }
  })

  test('cut points do not depend on the split: 1-byte pieces', () => {
    const data = DATA_32M.subarray(0, 2 * MiB)
    expect(cutPoints(data, DEFAULT_CHUNKER, [1])).toEqual(cutPoints(data, DEFAULT_CHUNKER))
  })

  test('cut points do not depend on the split: small chunks, tiny pieces crossing every phase', () => {
    const data = seededBytes(MiB, 11)
    const whole = cutPoints(data, SMALL)
    expect(whole.length).toBeGreaterThan(2000)
    for (const pieces of [[1], [2, 3, 5, 7], randomPieces(9, 5000, 300), [63, 64, 65], [255, 256, 1023, 1024, 1025]]) {
      expect(cutPoints(data, SMALL, pieces)).toEqual(whole)
    }
  })

  test('every chunk but the last is within [min, max]', () => {
    const sizes = sizesOf(CUTS_32M)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(DATA_32M.length)
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(DEFAULT_CHUNKER.minSize)
      expect(s).toBeLessThanOrEqual(DEFAULT_CHUNKER.maxSize)
    }
    expect(sizes[sizes.length - 1]).toBeLessThanOrEqual(DEFAULT_CHUNKER.maxSize)

    const small = sizesOf(cutPoints(seededBytes(MiB, 5), SMALL))
    for (const s of small.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(SMALL.minSize)
      expect(s).toBeLessThanOrEqual(SMALL.maxSize)
    }
  })

  test('mean chunk size is near avgSize on random data', () => {
    const mean = DATA_32M.length / CUTS_32M.length
    expect(mean).toBeGreaterThan(DEFAULT_CHUNKER.avgSize * 0.75)
    expect(mean).toBeLessThan(DEFAULT_CHUNKER.avgSize * 1.25)
    const small = cutPoints(seededBytes(2 * MiB, 5), SMALL)
    const smallMean = (2 * MiB) / small.length
    expect(smallMean).toBeGreaterThan(SMALL.avgSize * 0.75)
    expect(smallMean).toBeLessThan(SMALL.avgSize * 1.25)
  })

  test('data without cut points is cut at exactly maxSize', () => {
    const zeros = Buffer.alloc(2 * MiB + 1000)
    expect(sizesOf(cutPoints(zeros, DEFAULT_CHUNKER))).toEqual([512 * 1024, 512 * 1024, 512 * 1024, 512 * 1024, 1000])
    expect(sizesOf(cutPoints(zeros, DEFAULT_CHUNKER, [4095, 1, 100_000]))).toEqual([512 * 1024, 512 * 1024, 512 * 1024, 512 * 1024, 1000])
  })

  test('input shorter than minSize is never cut', () => {
    const c = new Chunker(DEFAULT_CHUNKER)
    const data = seededBytes(DEFAULT_CHUNKER.minSize - 1, 3)
    expect(c.next(data, 0)).toBe(-1)
    expect(c.next(data, data.length)).toBe(-1)
  })

  test('same seed: same cuts; another seed: other cuts', () => {
    const data = DATA_32M.subarray(0, 8 * MiB)
    const a = cutPoints(data, DEFAULT_CHUNKER)
    expect(cutPoints(data, {...DEFAULT_CHUNKER})).toEqual(a)
    const b = cutPoints(data, {...DEFAULT_CHUNKER, seed: 1})
    expect(b[0]).not.toBe(a[0])
    const shared = b.filter((end) => a.includes(end)).length
    // Only the final end (the data's length) plus maybe a coincidence.
    expect(shared).toBeLessThan(a.length / 10)
  })

  test('reset() forgets a partial chunk', () => {
    const data = seededBytes(MiB, 21)
    const c = new Chunker(DEFAULT_CHUNKER)
    expect(c.next(seededBytes(100_000, 99), 90_000)).toBe(-1)
    c.reset()
    let from = 0
    const ends: number[] = []
    for (let cut = c.next(data, from); cut >= 0; cut = c.next(data, from)) {
      ends.push(cut)
      from = cut
    }
    expect([...ends, data.length]).toEqual(cutPoints(data, DEFAULT_CHUNKER))
  })

  test('a 100-byte insert in the middle of 32 MiB changes only the chunks around it', () => {
    const middle = 16 * MiB + 12345
    const edited = Buffer.concat([DATA_32M.subarray(0, middle), seededBytes(100, 99), DATA_32M.subarray(middle)])
    const ids = (data: Buffer, ends: number[]) => ends.map((end, i) => blake3(data.subarray(i === 0 ? 0 : ends[i - 1]!, end)).toString('hex'))
    const before = new Set(ids(DATA_32M, CUTS_32M))
    const after = ids(edited, cutPoints(edited, DEFAULT_CHUNKER))
    const unshared = after.filter((id) => !before.has(id)).length
    expect(unshared).toBeGreaterThanOrEqual(1)
    expect(unshared).toBeLessThanOrEqual(2)
    expect(Math.abs(after.length - before.size)).toBeLessThanOrEqual(1)
  })
})
