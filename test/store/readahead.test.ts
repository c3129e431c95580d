// The S3 backend's read-ahead (src/store/readahead.ts) over objects held in memory: what it
// returns, how many requests it makes, and the buffers it holds.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'

import {ReadAhead} from '../../src/store/readahead.js'

const MiB = 1024 * 1024

/** Objects in memory and every request made of them. */
function store(objects: Record<string, Buffer>) {
  const calls: {name: string; offset: number; length: number}[] = []
  const buffers = new Set<Buffer>()
  let fail = 0
  const fetch = async (name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> => {
    calls.push({name, offset, length})
    if (into) buffers.add(into)
    await new Promise((resolve) => setImmediate(resolve))
    if (fail > 0) {
      fail--
      throw new Error('connection dropped')
    }
    const data = objects[name]!.subarray(offset, offset + length)
    const out = into ? into.subarray(0, data.length) : Buffer.allocUnsafe(data.length)
    data.copy(out)
    return out
  }
  return {calls, buffers, fetch, failNext: (n: number) => (fail = n)}
}

describe('read-ahead of ranged reads', () => {
  test('a lone read fetches exactly what it asks for', async () => {
    const pack = randomBytes(8 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    const got = await ra.read('p', 5 * MiB, 1000)
    expect(got.equals(pack.subarray(5 * MiB, 5 * MiB + 1000))).toBe(true)
    expect(s.calls).toEqual([{name: 'p', offset: 5 * MiB, length: 1000}])
  })

  test('two lanes reading one pack in interleaved pieces get the right bytes from a few windows', async () => {
    const pack = randomBytes(20 * MiB + 12345)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    const piece = 512 * 1024
    const lane = async (first: number) => {
      const into = Buffer.alloc(piece)
      for (let at = first * piece; at < pack.length; at += 2 * piece) {
        const length = Math.min(piece, pack.length - at)
        const got = await ra.read('p', at, length, into)
        expect(got.buffer).toBe(into.buffer)
        expect(got.equals(pack.subarray(at, at + length))).toBe(true)
      }
    }
    await Promise.all([lane(0), lane(1)])
    // 41 pieces; without read-ahead 41 requests. The first is exact, then windows of 4 MiB.
    expect(s.calls.length).toBeLessThanOrEqual(9)
    expect(s.calls.reduce((n, c) => n + Math.min(c.length, pack.length - c.offset), 0)).toBeLessThan(pack.length + 4 * MiB)
  })

  test('a read past the end comes back short, inside a window too', async () => {
    const pack = randomBytes(3 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    await ra.read('p', 0, 1000)
    const got = await ra.read('p', 1000, 1000)
    expect(got.equals(pack.subarray(1000, 2000))).toBe(true)
    expect((await ra.read('p', 3 * MiB - 10, 100)).length).toBe(10)
    expect(s.calls.length).toBe(2)
  })

  test('buffers are bounded by the budget, whatever the reads in flight', async () => {
    const objects: Record<string, Buffer> = {}
    for (let i = 0; i < 12; i++) objects[`p${i}`] = randomBytes(6 * MiB)
    const s = store(objects)
    const ra = new ReadAhead(1 * MiB, 3 * MiB, s.fetch)
    const names = Object.keys(objects)
    await Promise.all(names.map(async (name) => {
      for (let at = 0; at < 6 * MiB; at += 256 * 1024) {
        const got = await ra.read(name, at, 256 * 1024)
        expect(got.equals(objects[name]!.subarray(at, at + 256 * 1024))).toBe(true)
      }
    }))
    expect(s.buffers.size).toBeLessThanOrEqual(3)
    expect(ra.windowsFetched).toBeGreaterThan(0)
  })

  test('a window that fails fails its readers, and the next read fetches again', async () => {
    const pack = randomBytes(8 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    await ra.read('p', 0, 1000)
    s.failNext(1)
    await expect(ra.read('p', 1000, 1000)).rejects.toThrow('connection dropped')
    expect((await ra.read('p', 2000, 1000)).equals(pack.subarray(2000, 3000))).toBe(true)
  })
})
