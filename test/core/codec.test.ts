import {execFileSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, test} from 'vitest'
import {Compression, decodeBlob, encodeBlob, zstdContentSize} from '../../src/core/codec.js'
import {IntegrityError} from '../../src/core/errors.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

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

  test('the bindings write frames without a content size', async () => {
    const e = await encodeBlob(seededText(100_000, 1), 3)
    expect(e.data.subarray(0, 4).toString('hex')).toBe('28b52ffd')
    expect(zstdContentSize(e.data)).toBeUndefined()
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
    await expectIntegrity(decodeBlob(z.data, z.compression, 50_001), 'blob inflated to 50000 bytes, index says 50001')
    await expectIntegrity(decodeBlob(z.data, z.compression, 0), 'blob inflated to 50000 bytes, index says 0')
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
