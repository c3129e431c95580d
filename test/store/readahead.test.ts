// The S3 backend's read-ahead (src/store/readahead.ts) over objects held in memory: what it
// returns, how many requests it makes, and the buffers it holds.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'

import {ReadAhead} from '../../src/store/readahead.js'

const MiB = 1024 * 1024

/** Objects in memory and every request made of them. */
function store(objects: Record<string, Buffer>) {
  const calls: {name: string; offset: number; length: number}[] = []
  /** The memory fetched into (a window's buffer, or a read's own). */
  const buffers = new Set<ArrayBufferLike>()
  let fail = 0
  const fetch = async (name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> => {
    calls.push({name, offset, length})
    if (into) buffers.add(into.buffer)
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
  /** Bytes the fetches brought back. */
  const fetched = () => calls.reduce((n, c) => n + Math.max(0, Math.min(c.length, objects[c.name]!.length - c.offset)), 0)
  return {calls, buffers, fetch, fetched, failNext: (n: number) => (fail = n)}
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
    // Windows' buffers are 1 MiB each; the reads' own are 256 KiB.
    expect([...s.buffers].filter((b) => b.byteLength === 1 * MiB).length).toBeLessThanOrEqual(3)
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

  test('a read that runs past a window takes its tail and the next window, which starts where it ends', async () => {
    const pack = randomBytes(20 * MiB + 4321)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    // Pieces that do not divide the window, read by one lane three at a time (as a restore's runs).
    const piece = 768 * 1024 + 17
    const reads: Promise<void>[] = []
    for (let at = 0; at < pack.length; at += piece) {
      const from = at
      const length = Math.min(piece, pack.length - at)
      reads.push(ra.read('p', from, length, Buffer.alloc(length)).then((got) => expect(got.equals(pack.subarray(from, from + length))).toBe(true)))
      if (reads.length >= 3) await reads.shift()
    }
    await Promise.all(reads)
    // The first read exact; then the first block with its tail (4.5 MiB, the first piece again), and
    // windows back to back from there: every other byte fetched once.
    expect(s.fetched()).toBe(pack.length + piece)
    expect(s.calls.map((c) => c.offset / MiB)).toEqual([0, 0, 4.5, 8.5, 12.5, 16.5])
  })

  test('two lanes reading interleaved pieces, three ahead each, fetch every byte once (but the first read)', async () => {
    const pack = randomBytes(24 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    const piece = 640 * 1024
    const lane = async (first: number) => {
      const pending: Promise<void>[] = []
      for (let at = first * piece; at < pack.length; at += 2 * piece) {
        const from = at
        const length = Math.min(piece, pack.length - at)
        pending.push(ra.read('p', from, length).then((got) => expect(got.equals(pack.subarray(from, from + length))).toBe(true)))
        if (pending.length >= 3) await pending.shift()
      }
      await Promise.all(pending)
    }
    await Promise.all([lane(0), lane(1)])
    // Once more: the first piece, read exactly before the first block.
    expect(s.fetched()).toBe(pack.length + piece)
    expect(s.calls.length).toBe(1 + Math.ceil((pack.length - 4.5 * MiB) / (4 * MiB)) + 1)
  })

  test('a lane behind another finds the block the other one opened', async () => {
    const pack = randomBytes(8 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 16 * MiB, s.fetch)
    await ra.read('p', 2 * MiB, 1000)
    await ra.read('p', 2 * MiB + 1000, 1000)
    // The second lane starts at the beginning of the pack, before the first lane's reads.
    const got = await ra.read('p', 0, MiB)
    expect(got.equals(pack.subarray(0, MiB))).toBe(true)
    expect(s.calls.map((c) => [c.offset, c.length])).toEqual([[2 * MiB, 1000], [0, 4.5 * MiB]])
  })

  test('a window whose bytes have all been served goes before one still being read', async () => {
    const a = randomBytes(4 * MiB)
    const b = randomBytes(4 * MiB)
    const s = store({a, b})
    const ra = new ReadAhead(1 * MiB, 2 * MiB, s.fetch)
    const k = 128 * 1024
    const read = async (name: 'a' | 'b', at: number) => expect((await ra.read(name, at, k)).equals({a, b}[name].subarray(at, at + k))).toBe(true)
    // A slow stream on a and a fast one on b, each with a window open (its block and tail: 9 reads).
    await read('a', 0)
    await read('a', k)
    await read('b', 0)
    await read('b', k)
    // b reads its window to the end (so a's is the least recently used), then needs another.
    for (let at = 2 * k; at < 9 * k; at += k) await read('b', at)
    await read('b', 9 * k)
    // a's window is still there: a goes on without fetching.
    const before = s.calls.length
    for (let at = 2 * k; at < 9 * k; at += k) await read('a', at)
    expect(s.calls.length).toBe(before)
    expect(s.calls.filter((c) => c.name === 'a').length).toBe(2)
  })

  test('a read over two windows fails when the second fails, and keeps the first', async () => {
    const pack = randomBytes(12 * MiB)
    const s = store({p: pack})
    const ra = new ReadAhead(4 * MiB, 8 * MiB, s.fetch)
    await ra.read('p', 0, 1000)
    await ra.read('p', 1000, 1000)
    expect(s.calls.length).toBe(2)
    s.failNext(1)
    const into = Buffer.alloc(MiB)
    await expect(ra.read('p', 4 * MiB, MiB, into)).rejects.toThrow('connection dropped')
    const got = await ra.read('p', 4 * MiB, MiB, into)
    expect(got.equals(pack.subarray(4 * MiB, 5 * MiB))).toBe(true)
    // The first window's tail served the read both times; only the failed window was fetched again.
    expect(s.calls.map((c) => c.offset / MiB)).toEqual([0, 0, 4.5, 4.5])
  })

  test('a window a read is copying from is not reused while another part of that read is fetched', async () => {
    const objects = {p: randomBytes(4 * MiB), q: randomBytes(4 * MiB)}
    const s = store(objects)
    // The window of p from 1.125 MiB is held back until released.
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const fetch = async (name: string, offset: number, length: number, into?: Buffer) => {
      if (name === 'p' && offset === 1.125 * MiB) await held
      return s.fetch(name, offset, length, into)
    }
    const ra = new ReadAhead(1 * MiB, 2 * MiB, fetch)
    await ra.read('p', 0, 1000)
    await ra.read('p', 1000, 1000)
    // Over the end of p's first window (0 to 1.125 MiB) into the next, which is slow.
    const across = ra.read('p', MiB, 256 * 1024)
    await new Promise((resolve) => setImmediate(resolve))
    // Meanwhile q is read through; its windows may not take the buffer of p's first one.
    for (let at = 0; at < 4 * MiB; at += 128 * 1024) {
      expect((await ra.read('q', at, 128 * 1024)).equals(objects.q.subarray(at, at + 128 * 1024))).toBe(true)
    }
    release()
    expect((await across).equals(objects.p.subarray(MiB, MiB + 256 * 1024))).toBe(true)
  })
})
