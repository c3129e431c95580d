import {execFileSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {createRequire} from 'node:module'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {Compression, compressInto, decodeBlob, encodeBlob, inflateBatches, inflatedSize, openBlobs, type StoredBlob, zstdContentSize} from '../../src/core/codec.js'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {nativeAddon} from '../../src/core/native.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

// The codec's cases, run twice: through the native addon (codec.test.ts) and through the
// fallback, @mongodb-js/zstd and hash.ts (codec-fallback.test.ts, with CKPT_NATIVE=0).

const MiB = 1024 * 1024

/** Seeded text-like data: compressible, and more so at higher levels. */
function seededText(length: number, seed: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'checkpoint', 'restore', 'chunk', 'pack', 'index', 'tree', 'manifest', 'lock', 'zstd', 'blake3', 'the', 'of', 'and', 'a', 'to', 'in']
  const parts: string[] = []
  let n = 0
  let x = seed >>> 0
  while (n < length) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    const w = words[x % words.length]! + ((x >>> 8) % 7 === 0 ? '\n' : ' ') + ((x >>> 12) % 5 === 0 ? String(x % 1000) : '')
    parts.push(w)
    n += w.length
  }
  return Buffer.from(parts.join('')).subarray(0, length)
}

let dir: string
beforeAll(async () => {
  dir = await tempDir('ckpt-codec-')
})
afterAll(async () => {
  await fsp.rm(dir, {recursive: true, force: true})
})

function zstdCli(args: string[], file: string): Buffer {
  return execFileSync('zstd', [...args, '-q', '-c', file], {maxBuffer: 64 * MiB})
}

async function expectIntegrity(p: Promise<unknown>, message: string | RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(IntegrityError)
  expect((err as Error).message).toMatch(message)
}

/** A frame without a content size, as @mongodb-js/zstd writes them (and ckpt did before 0.1). */
async function frameWithoutSize(plain: Buffer, level = 3): Promise<Buffer> {
  const bindings = createRequire(import.meta.url)('@mongodb-js/zstd/bindings.js') as {compress(b: Buffer, l: number): Promise<Buffer>}
  const frame = await bindings.compress(plain, level)
  expect(zstdContentSize(frame)).toBeUndefined()
  return frame
}

export function codecCases(engine: 'native' | 'fallback'): void {
  test(`runs on the ${engine} engine`, () => {
    expect(nativeAddon() !== null).toBe(engine === 'native')
  })

  describe('encodeBlob', () => {
    test('the compression level takes effect, and matches the zstd CLI at the same level', async () => {
      const text = seededText(MiB, 12345)
      const file = path.join(dir, 'text')
      await fsp.writeFile(file, text)
      const sizes: Record<number, number> = {}
      for (const level of [1, 19]) {
        const e = await encodeBlob(text, level)
        expect(e.compression).toBe(Compression.zstd)
        sizes[level] = e.data.length
        // Our frames carry no checksum and no content size; --no-check leaves only the 2-3 byte size field apart.
        const cli = zstdCli([`-${level}`, '--no-check'], file)
        expect(Math.abs(e.data.length - cli.length) / cli.length).toBeLessThan(0.02)
      }
      // Level 1 vs 19 on this data: about 29% vs 21% of the input.
      expect(sizes[1]! / text.length).toBeGreaterThan(0.25)
      expect(sizes[19]! / text.length).toBeLessThan(0.23)
      expect(sizes[19]!).toBeLessThan(sizes[1]! * 0.85)
    })

    test('zstd -d decodes our frames', async () => {
      const text = seededText(300_000, 7)
      for (const level of [1, 3, 12]) {
        const e = await encodeBlob(text, level)
        expect(e.compression).toBe(Compression.zstd)
        const file = path.join(dir, `frame-${level}.zst`)
        await fsp.writeFile(file, e.data)
        expect(zstdCli(['-d'], file).equals(text)).toBe(true)
      }
    })

    test('frames declare their content size (the addon), or none (@mongodb-js/zstd)', async () => {
      const e = await encodeBlob(seededText(100_000, 1), 3)
      expect(e.data.subarray(0, 4).toString('hex')).toBe('28b52ffd')
      expect(zstdContentSize(e.data)).toBe(engine === 'native' ? 100_000 : undefined)
    })

    test('compressInto writes into the given buffer, and says 0 when the frame would not be shorter or not fit', async () => {
      const text = seededText(200_000, 21)
      const dst = Buffer.alloc(300_000, 0xee)
      // zstd may use all of dst as it works, never a byte past it.
      const n = await compressInto(text, 3, dst.subarray(0, 250_000))
      expect(n).toBeGreaterThan(0)
      expect(n).toBeLessThan(text.length)
      expect(dst[250_000]).toBe(0xee)
      expect((await decodeBlob(dst.subarray(0, n), Compression.zstd, text.length)).equals(text)).toBe(true)
      // One byte too few for that frame: not stored compressed, and nothing written past the end.
      const tight = Buffer.alloc(n, 0xee)
      expect(await compressInto(text, 3, tight.subarray(0, n - 1))).toBe(0)
      expect(tight[n - 1]).toBe(0xee)
      // Random bytes do not shrink; tiny blobs and level 0 are not tried.
      expect(await compressInto(seededBytes(100_000, 3), 3, Buffer.alloc(200_000))).toBe(0)
      expect(await compressInto(Buffer.alloc(63), 3, Buffer.alloc(100))).toBe(0)
      expect(await compressInto(text, 0, dst)).toBe(0)
    })

    test('many compressions at once give the frames one at a time gives', async () => {
      const texts = Array.from({length: 24}, (_, i) => seededText(20_000 + i * 9_000, 100 + i))
      const alone: Buffer[] = []
      for (const t of texts) alone.push((await encodeBlob(t, 3)).data)
      const together = await Promise.all(texts.map((t) => encodeBlob(t, 3)))
      together.forEach((e, i) => expect(e.data.equals(alone[i]!)).toBe(true))
    })

    test('incompressible data is stored as is', async () => {
      const random = seededBytes(256 * 1024, 9)
      const e = await encodeBlob(random, 3)
      expect(e.compression).toBe(Compression.none)
      expect(e.data.equals(random)).toBe(true)
      expect((await decodeBlob(e.data, e.compression, random.length)).equals(random)).toBe(true)
    })

    test('level 0 and blobs under 64 bytes are stored as is', async () => {
      const text = seededText(10_000, 2)
      expect((await encodeBlob(text, 0)).compression).toBe(Compression.none)
      expect((await encodeBlob(text, 0)).data.equals(text)).toBe(true)
      const zeros63 = Buffer.alloc(63)
      expect(await encodeBlob(zeros63, 19)).toEqual({compression: Compression.none, data: zeros63})
      const zeros64 = Buffer.alloc(64)
      expect((await encodeBlob(zeros64, 19)).compression).toBe(Compression.zstd)
    })

    test('accepts a Uint8Array view with an offset', async () => {
      const backing = Buffer.concat([Buffer.from('garbage-before'), seededText(5000, 4), Buffer.from('garbage-after')])
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 14, 5000)
      const e = await encodeBlob(view, 3)
      expect(e.compression).toBe(Compression.zstd)
      expect((await decodeBlob(e.data, e.compression, 5000)).equals(Buffer.from(view))).toBe(true)
    })
  })

  describe('decodeBlob', () => {
    test.each([0, 1, 63, 64, 1000, 65_536, 1_000_003])('round trip, %i bytes of text', async (n) => {
      const text = seededText(n, n + 1)
      const e = await encodeBlob(text, 3)
      const back = await decodeBlob(e.data, e.compression, n)
      expect(back.length).toBe(n)
      expect(back.equals(text)).toBe(true)
    })

    test('a frame written by the zstd CLI (with content size and checksum) decodes', async () => {
      const text = seededText(70_000, 3)
      const file = path.join(dir, 'cli-src')
      await fsp.writeFile(file, text)
      const frame = zstdCli(['-3'], file)
      expect(zstdContentSize(frame)).toBe(70_000)
      expect((await decodeBlob(frame, Compression.zstd, 70_000)).equals(text)).toBe(true)
    })

    test('a frame that declares another size is refused before inflating', async () => {
      const text = seededText(70_000, 3)
      const file = path.join(dir, 'cli-src2')
      await fsp.writeFile(file, text)
      const frame = zstdCli(['-3'], file)
      await expectIntegrity(decodeBlob(frame, Compression.zstd, 69_999), 'zstd frame declares 70000 bytes of content, index says 69999')
    })

    test('wrong rawLength is an IntegrityError', async () => {
      const text = seededText(50_000, 5)
      const z = await encodeBlob(text, 3)
      expect(z.compression).toBe(Compression.zstd)
      const declared = engine === 'native' ? /zstd frame declares 50000 bytes of content, index says/ : /zstd frame does not inflate to the/
      await expectIntegrity(decodeBlob(z.data, z.compression, 50_001), declared)
      await expectIntegrity(decodeBlob(z.data, z.compression, 0), declared)
      // A frame that declares no size is held to the index by what it inflates to.
      const bare = await frameWithoutSize(text)
      expect((await decodeBlob(bare, Compression.zstd, 50_000)).equals(text)).toBe(true)
      await expectIntegrity(decodeBlob(bare, Compression.zstd, 50_001), 'zstd frame does not inflate to the 50001 bytes the index says')
      await expectIntegrity(decodeBlob(bare, Compression.zstd, 49_999), 'zstd frame does not inflate to the 49999 bytes the index says')
      const raw = seededBytes(1000, 5)
      await expectIntegrity(decodeBlob(raw, Compression.none, 999), 'stored blob has 1000 bytes, index says 999')
    })

    test('flipped bytes in the frame magic and header are IntegrityErrors', async () => {
      const text = seededText(200_000, 6)
      const z = await encodeBlob(text, 3)
      for (const at of [0, 1, 2, 3, 4, 6, 7, 8, z.data.length - 1]) {
        for (const mask of [0x80, 0xff]) {
          const bad = Buffer.from(z.data)
          bad[at]! ^= mask
          await expectIntegrity(decodeBlob(bad, Compression.zstd, text.length), /zstd frame/)
        }
      }
    })

    test('a truncated frame is an IntegrityError', async () => {
      const text = seededText(200_000, 8)
      const z = await encodeBlob(text, 3)
      for (const n of [0, 3, 4, 5, 10, z.data.length >> 1, z.data.length - 1]) {
        await expectIntegrity(decodeBlob(z.data.subarray(0, n), Compression.zstd, text.length), /corrupt zstd frame/)
      }
    })

    test('an unknown compression value is refused', async () => {
      for (const c of [2, 255, -1]) {
        await expectIntegrity(decodeBlob(Buffer.alloc(10), c, 10), `unknown compression ${c}`)
      }
    })

    test('the on-disk compression numbers', () => {
      expect(Compression).toEqual({none: 0, zstd: 1})
    })
  })

  describe('inflateBatches', () => {
    test('batches inflate to at most maxBytes (a larger blob alone); blobs stored as is cost nothing', () => {
      const z = (rawLength: number) => ({compression: Compression.zstd, rawLength})
      const raw = (rawLength: number) => ({compression: Compression.none, rawLength})
      const blobs = [z(300), raw(5000), z(300), z(500), z(2000), raw(10), z(100), z(900), z(100)]
      const batches = inflateBatches(blobs, 1000)
      expect(batches.flat()).toEqual(blobs)
      expect(batches.map((b) => inflatedSize(b))).toEqual([600, 500, 2000, 1000, 100])
      expect(inflateBatches([], 1000)).toEqual([])
    })
  })

  describe('openBlobs', () => {
    /** Blobs laid back to back after a 7-byte prefix, as a ranged pack read returns them. */
    function pack(parts: {stored: Buffer; compression: number; rawLength: number; id: Uint8Array}[]): {stored: Buffer; blobs: StoredBlob[]} {
      const blobs: StoredBlob[] = []
      let at = 7
      for (const p of parts) {
        blobs.push({offset: at, storedLength: p.stored.length, compression: p.compression, rawLength: p.rawLength, id: p.id})
        at += p.stored.length
      }
      return {stored: Buffer.concat([Buffer.from('prefix!'), ...parts.map((p) => p.stored)]), blobs}
    }

    test('gives every blob back, checked: inflated into dst, or where it lies when stored as is', async () => {
      const plains = [seededText(130_000, 1), seededBytes(70_000, 2), seededText(100, 3), seededText(512 * 1024, 4), Buffer.alloc(0)]
      const parts = await Promise.all(plains.map(async (p) => {
        const e = await encodeBlob(p, 3)
        return {stored: e.data, compression: e.compression, rawLength: p.length, id: blake3(p)}
      }))
      // A frame without a content size, as older repositories hold them.
      const old = seededText(40_000, 5)
      parts.push({stored: await frameWithoutSize(old), compression: Compression.zstd, rawLength: old.length, id: blake3(old)})
      plains.push(old)
      const {stored, blobs} = pack(parts)
      expect(blobs.map((b) => b.compression)).toEqual([1, 0, 1, 1, 0, 1])
      const dst = Buffer.alloc(inflatedSize(blobs))
      expect(dst.length).toBe(130_000 + 100 + 512 * 1024 + 40_000)
      const opened = await openBlobs(stored, blobs, dst)
      opened.forEach((o, i) => {
        expect(o.ok).toBe(true)
        if (!o.ok) return
        expect(Buffer.from(o.plain).equals(plains[i]!)).toBe(true)
        // Stored as is: a view of the bytes read, no copy.
        if (blobs[i]!.compression === Compression.none) expect(o.plain.buffer).toBe(stored.buffer)
      })
      if (engine === 'native') {
        const first = opened[0]!
        expect(first.ok && first.plain.buffer).toBe(dst.buffer)
      }
    })

    test('reports each damaged blob in its slot and still opens the others', async () => {
      const text = seededText(90_000, 7)
      const z = await encodeBlob(text, 3)
      const raw = seededBytes(5000, 8)
      const good = {stored: z.data, compression: Compression.zstd, rawLength: text.length, id: blake3(text)}
      const truncated = z.data.subarray(0, z.data.length - 9)
      const flipped = Buffer.from(z.data)
      flipped[flipped.length >> 1]! ^= 0x5a
      const {stored, blobs} = pack([
        good,
        {...good, id: blake3(Buffer.from('another blob'))},
        {...good, stored: truncated},
        {stored: raw, compression: Compression.none, rawLength: raw.length, id: blake3(raw)},
        {stored: raw, compression: Compression.none, rawLength: raw.length + 1, id: blake3(raw)},
        {...good, rawLength: text.length - 1},
        {stored: raw, compression: 7, rawLength: raw.length, id: blake3(raw)},
        {...good, stored: Buffer.concat([z.data, z.data])},
        {...good, stored: flipped},
        good,
      ])
      const opened = await openBlobs(stored, blobs, Buffer.alloc(inflatedSize(blobs)))
      const said = opened.map((o) => (o.ok ? 'ok' : o.error ? o.error.message : 'mismatch'))
      expect(said[0]).toBe('ok')
      expect(said[1]).toBe('mismatch')
      expect(said[2]).toMatch(/^corrupt zstd frame: /)
      expect(said[3]).toBe('ok')
      expect(said[4]).toBe('stored blob has 5000 bytes, index says 5001')
      expect(said[5]).toMatch(engine === 'native' ? /^zstd frame declares 90000 bytes of content, index says 89999$/ : /^zstd frame does not inflate to the 89999 bytes/)
      expect(said[6]).toBe('unknown compression 7')
      // Two frames where one belongs: never the blob (the second frame would double it).
      expect(said[7]).toMatch(/zstd frame/)
      // A flipped byte in the compressed data: caught by zstd or by the BLAKE3 check, never passed.
      expect(said[8]).not.toBe('ok')
      expect(said[9]).toBe('ok')
      for (const o of opened) if (!o.ok && o.error) expect(o.error).toBeInstanceOf(IntegrityError)
    })

    test('refuses a dst too small for the inflated blobs, and blobs outside the bytes read', async () => {
      const text = seededText(60_000, 9)
      const z = await encodeBlob(text, 3)
      const {stored, blobs} = pack([{stored: z.data, compression: Compression.zstd, rawLength: text.length, id: blake3(text)}])
      await expect(openBlobs(stored, blobs, Buffer.alloc(text.length - 1))).rejects.toThrow(RangeError)
      await expect(openBlobs(stored, [{...blobs[0]!, offset: stored.length - 10}], Buffer.alloc(text.length))).rejects.toThrow(RangeError)
    })
  })

  describe('zstdContentSize', () => {
    test.each([
      // [input length, frame-header content-size field width]
      [100, 1],
      [255, 1],
      [256, 2],
      [65_791, 2],
      [65_792, 4],
      [100_000, 4],
    ])('frames from the zstd CLI: %i bytes', async (n, width) => {
      const file = path.join(dir, `size-${n}`)
      await fsp.writeFile(file, seededText(n, n))
      const frame = zstdCli(['-3'], file)
      expect(zstdContentSize(frame)).toBe(n)
      const fcsFlag = frame[4]! >> 6
      const singleSegment = (frame[4]! >> 5) & 1
      expect(fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]).toBe(width)
    })

    const magic = [0x28, 0xb5, 0x2f, 0xfd]
    test.each<[string, number[], number | undefined]>([
      ['8-byte size, window byte', [...magic, 0xc0, 0x00, 1, 2, 3, 4, 5, 6, 0, 0], 0x060504030201],
      ['8-byte size beyond 2^53', [...magic, 0xc0, 0x00, 0, 0, 0, 0, 0, 0, 0x20, 0], undefined],
      ['4-byte size after a 1-byte dictionary id', [...magic, 0x81, 0x00, 0x99, 0x10, 0x27, 0, 0], 10_000],
      ['4-byte size after a 4-byte dictionary id', [...magic, 0x83, 0x00, 9, 9, 9, 9, 0x10, 0x27, 0, 0], 10_000],
      ['2-byte size is offset by 256', [...magic, 0x40, 0x00, 0, 0], 256],
      ['single segment, 1-byte size', [...magic, 0x20, 42], 42],
      ['no size declared', [...magic, 0x00, 0x00, 0, 0], undefined],
      ['size field cut off', [...magic, 0x80, 0x00, 1, 2], undefined],
      ['not a zstd frame', [0x28, 0xb5, 0x2f, 0xfe, 0x20, 42], undefined],
      ['too short', [...magic, 0x20], undefined],
    ])('%s', (_what, bytes, expected) => {
      expect(zstdContentSize(Uint8Array.from(bytes))).toBe(expected)
    })
  })
}
