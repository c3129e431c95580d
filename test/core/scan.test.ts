// StreamScanner: the native scan job and the fallback (the JS scan), each followed by the HashPool,
// must give the same chunks and ids, whatever the buffer boundaries, as Chunker plus blake3 on the
// whole stream.
import {afterAll, describe, expect, it} from 'vitest'

import {Chunker, DEFAULT_CHUNKER, type ChunkerParams} from '../../src/core/chunker.js'
import {blake3} from '../../src/core/hash.js'
import {HashPool} from '../../src/core/hashpool.js'
import {StreamScanner} from '../../src/core/scan.js'
import {seededBytes, seededRandom} from '../helpers/tree.js'

const pool = new HashPool(2)
afterAll(async () => {
  await pool.close()
})

/** Reference: the whole stream in one buffer through Chunker.next, each chunk through blake3. */
function reference(params: ChunkerParams, data: Buffer): {ends: number[]; ids: string[]} {
  const c = new Chunker(params, 'js')
  const ends: number[] = []
  for (let cut = c.next(data, 0); cut >= 0; cut = c.next(data, cut)) ends.push(cut)
  if (ends.at(-1) !== data.length && data.length > 0) ends.push(data.length)
  return {ends, ids: ends.map((end, i) => blake3(data.subarray(i === 0 ? 0 : ends[i - 1], end)).toString('hex'))}
}

/** Feed the stream in pieces the way the archiver does: the unfinished chunk is carried in front of the next piece. */
async function scanStream(scanner: StreamScanner, data: Buffer, split: () => number): Promise<{ends: number[]; ids: string[]}> {
  const ends: number[] = []
  const ids: string[] = []
  scanner.reset()
  let carryStart = 0 // stream offset of the carried bytes
  let at = 0 // stream offset of the next new byte
  do {
    const take = Math.min(split(), data.length - at)
    const final = at + take === data.length
    const buf = Buffer.from(data.subarray(carryStart, at + take)) // a fresh buffer, as a pooled one would be
    const scanned = await scanner.scan(buf, at - carryStart, final)
    const scannedIds = await scanned.ids
    expect(scannedIds.length).toBe(scanned.chunks.length)
    let start = 0
    scanned.chunks.forEach((chunk, i) => {
      expect(chunk.byteOffset - buf.byteOffset).toBe(start)
      start += chunk.length
      ends.push(carryStart + start)
      ids.push(scannedIds[i]!.toString('hex'))
    })
    expect(scanned.rest).toBe(start)
    carryStart += scanned.rest
    at += take
  } while (at < data.length)
  return {ends, ids}
}

describe('StreamScanner', () => {
  const params: ChunkerParams[] = [DEFAULT_CHUNKER, {minSize: 256, avgSize: 1024, maxSize: 4096, normalization: 1, seed: 3}]

  it.each(['native', 'js'] as const)('%s: the same chunks and ids as one whole-stream pass, for any split', async (engine) => {
    const data = seededBytes(5 * 1024 * 1024 + 321, 8)
    data.fill(7, 2 * 1024 * 1024, 3 * 1024 * 1024) // a run that only max-size cuts can split
    for (const p of params) {
      const want = reference(p, data)
      const rand = seededRandom(p.avgSize)
      for (const split of [() => 2 * 1024 * 1024, () => 1 + Math.floor(rand() * 300_000), () => 64 * 1024]) {
        expect(await scanStream(new StreamScanner(p, () => pool, engine), data, split)).toEqual(want)
      }
    }
  })

  it.each(['native', 'js'] as const)('%s: empty and tiny streams; a scanner is reusable after reset', async (engine) => {
    const scanner = new StreamScanner(DEFAULT_CHUNKER, () => pool, engine)
    const empty = await scanner.scan(Buffer.alloc(0), 0, true)
    expect(empty.chunks).toEqual([])
    expect(empty.rest).toBe(0)
    const tiny = Buffer.from('hello')
    scanner.reset()
    const one = await scanner.scan(tiny, 0, true)
    expect(one.chunks.map((c) => c.toString())).toEqual(['hello'])
    expect((await one.ids)[0]!.equals(blake3(tiny))).toBe(true)
    // Not final: a small buffer is all carried over.
    scanner.reset()
    const part = await scanner.scan(tiny, 0, false)
    expect(part.chunks).toEqual([])
    expect(part.rest).toBe(0)
  })

  it('refuses a second scan while one runs', async () => {
    const scanner = new StreamScanner(DEFAULT_CHUNKER, () => pool)
    const data = seededBytes(4 * 1024 * 1024, 2)
    const first = scanner.scan(data, 0, true)
    await expect(scanner.scan(data, 0, true)).rejects.toThrow(/one scan at a time/)
    expect((await first).chunks.length).toBeGreaterThan(5)
  })
})
